//! Reading results directories, tolerantly: summary.json as a JSON value
//! (fields come and go between versions; nothing here depends on one being
//! there or absent), CSV files by header name with unknown columns kept or
//! ignored, never by position.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ReportError;

/// `timeseries.csv` as columns: every column whose values are numbers (or
/// empty) by its header name; text columns (`utc`) keep only their first
/// value.
#[derive(Debug, Clone, Default)]
pub struct Timeseries {
    pub names: Vec<String>,
    pub columns: Vec<Vec<Option<f64>>>,
    /// The first row's `utc`, as written.
    pub first_utc: Option<String>,
}

impl Timeseries {
    pub fn column(&self, name: &str) -> Option<&[Option<f64>]> {
        let i = self.names.iter().position(|n| n == name)?;
        Some(&self.columns[i])
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, Vec::len)
    }

    /// The `failed_<kind>` columns, in file order.
    pub fn failure_kinds(&self) -> Vec<String> {
        self.names
            .iter()
            .filter_map(|n| n.strip_prefix("failed_"))
            .map(str::to_string)
            .collect()
    }

    /// Latency metrics with per-second percentiles: `connect` from
    /// `connect_p50_us`, `connect_max_us`, ... in file order.
    pub fn latency_metrics(&self) -> Vec<String> {
        let mut metrics: Vec<String> = Vec::new();
        for name in &self.names {
            if let Some(metric) = latency_column(name).map(|(m, _)| m.to_string())
                && !metrics.contains(&metric)
            {
                metrics.push(metric);
            }
        }
        metrics
    }
}

/// `connect_p99_us` → (`connect`, `p99`); `connect_max_us` → (`connect`, `max`).
pub fn latency_column(name: &str) -> Option<(&str, &str)> {
    let stem = name.strip_suffix("_us")?;
    let (metric, stat) = stem.rsplit_once('_')?;
    let is_stat = stat == "max"
        || (stat.len() > 1
            && stat.starts_with('p')
            && stat[1..].chars().all(|c| c.is_ascii_digit()));
    (is_stat && !metric.is_empty()).then_some((metric, stat))
}

/// One metric's percentile distribution (`latency.csv` or `<metric>.hgrm`):
/// (percentile 0 to 100, value in µs) steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    pub metric: String,
    pub steps: Vec<(f64, f64)>,
}

/// A CSV file as header + rows of text, for tables shown as they are.
#[derive(Debug, Clone, Default)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// One run's results directory.
#[derive(Debug, Clone)]
pub struct Run {
    /// A short name for legends: the directory's name, made unique.
    pub name: String,
    pub dir: PathBuf,
    /// summary.json, or `Null` when the run left none.
    pub summary: Value,
    pub timeseries: Timeseries,
    pub latency: Vec<Distribution>,
    /// `failures.csv`, `sources.csv` and a fleet run's `hosts.csv`, when
    /// there.
    pub failures: Option<Table>,
    pub sources: Option<Table>,
    pub hosts: Option<Table>,
}

impl Run {
    /// A number in summary.json at `path` (object keys).
    pub fn num(&self, path: &[&str]) -> Option<f64> {
        lookup(&self.summary, path)?.as_f64()
    }

    pub fn first_limit(&self) -> Option<&Value> {
        lookup(&self.summary, &["first_limit"]).filter(|v| v.is_object())
    }
}

/// An explore directory: explore.json's (or ladder.csv's) rows and each
/// step's run.
#[derive(Debug, Clone)]
pub struct Ladder {
    pub name: String,
    pub dir: PathBuf,
    /// explore.json, or `Null` when only ladder.csv was there.
    pub explore: Value,
    /// One object per step: step, change, ceiling, limit, at_attempt,
    /// evidence, remedy, results_dir (as the files have them).
    pub steps: Vec<Value>,
    pub runs: Vec<Run>,
}

/// A sweep directory (`ceiling sweep`): sweep.csv's rows and each pool's
/// run (`pool-N/`).
#[derive(Debug, Clone)]
pub struct Sweep {
    pub name: String,
    pub dir: PathBuf,
    /// sweep.csv as written: one row per pool.
    pub table: Table,
    pub runs: Vec<Run>,
}

#[derive(Debug, Clone)]
pub enum Loaded {
    Run(Run),
    Ladder(Ladder),
    Sweep(Sweep),
}

/// `value[path[0]][path[1]]...`.
pub fn lookup<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(value, |v, key| v.get(key))
}

fn io_error(path: &Path, source: std::io::Error) -> ReportError {
    ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn parse_error(path: &Path, message: impl ToString) -> ReportError {
    ReportError::Parse {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Reads a results directory: an explore directory (explore.json or
/// ladder.csv), a sweep's (sweep.csv) or a run's (summary.json or
/// timeseries.csv).
pub fn load(dir: &Path) -> Result<Loaded, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NotResults(dir.to_path_buf()));
    }
    if dir.join("explore.json").is_file() || dir.join("ladder.csv").is_file() {
        return load_ladder(dir).map(Loaded::Ladder);
    }
    if dir.join("sweep.csv").is_file() {
        return load_sweep(dir).map(Loaded::Sweep);
    }
    load_run(dir).map(Loaded::Run)
}

pub fn load_run(dir: &Path) -> Result<Run, ReportError> {
    let summary_path = dir.join("summary.json");
    let timeseries_path = dir.join("timeseries.csv");
    if !summary_path.is_file() && !timeseries_path.is_file() {
        return Err(ReportError::NotResults(dir.to_path_buf()));
    }
    let summary = match std::fs::read_to_string(&summary_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| parse_error(&summary_path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(e) => return Err(io_error(&summary_path, e)),
    };
    let timeseries = if timeseries_path.is_file() {
        read_timeseries(&timeseries_path)?
    } else {
        Timeseries::default()
    };
    let table = |name: &str| {
        let path = dir.join(name);
        path.is_file().then(|| read_table(&path)).transpose()
    };
    Ok(Run {
        failures: table("failures.csv")?,
        sources: table("sources.csv")?,
        hosts: table("hosts.csv")?,
        name: dir_name(dir),
        dir: dir.to_path_buf(),
        summary,
        timeseries,
        latency: read_distributions(dir)?,
    })
}

fn load_ladder(dir: &Path) -> Result<Ladder, ReportError> {
    let json_path = dir.join("explore.json");
    let explore: Value = match std::fs::read_to_string(&json_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| parse_error(&json_path, e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Value::Null,
        Err(e) => return Err(io_error(&json_path, e)),
    };
    let steps: Vec<Value> = match explore.get("steps").and_then(Value::as_array) {
        Some(steps) => steps.clone(),
        None => {
            let table = read_table(&dir.join("ladder.csv"))?;
            table
                .rows
                .iter()
                .map(|row| {
                    let object = table
                        .header
                        .iter()
                        .zip(row)
                        .map(|(k, v)| {
                            let value = v
                                .parse::<u64>()
                                .map(Value::from)
                                .unwrap_or_else(|_| Value::from(v.as_str()));
                            (k.clone(), value)
                        })
                        .collect();
                    Value::Object(object)
                })
                .collect()
        }
    };
    let mut runs = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let number = step
            .get("step")
            .and_then(Value::as_u64)
            .unwrap_or(i as u64 + 1);
        // The directory as written, or beside explore.json when the whole
        // directory was moved or copied.
        let written = step
            .get("results_dir")
            .and_then(Value::as_str)
            .map(PathBuf::from)
            .filter(|p| p.join("summary.json").is_file());
        let step_dir = written.unwrap_or_else(|| dir.join(format!("step-{number}")));
        // A climb stopped before it wrote anything has no results: the
        // ladder's row still says what happened.
        match load_run(&step_dir) {
            Ok(mut run) => {
                run.name = format!("step {number}");
                runs.push(run);
            }
            Err(ReportError::NotResults(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Ladder {
        name: dir_name(dir),
        dir: dir.to_path_buf(),
        explore,
        steps,
        runs,
    })
}

fn load_sweep(dir: &Path) -> Result<Sweep, ReportError> {
    let table = read_table(&dir.join("sweep.csv"))?;
    let pool_at = table.header.iter().position(|h| h == "pool");
    let mut runs = Vec::new();
    for row in &table.rows {
        let Some(pool) = pool_at.and_then(|i| row.get(i)) else {
            continue;
        };
        // A step stopped before it wrote anything has only its row.
        match load_run(&dir.join(format!("pool-{pool}"))) {
            Ok(mut run) => {
                run.name = format!("pool {pool}");
                runs.push(run);
            }
            Err(ReportError::NotResults(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Sweep {
        name: dir_name(dir),
        dir: dir.to_path_buf(),
        table,
        runs,
    })
}

fn dir_name(dir: &Path) -> String {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute.file_name().map_or_else(
        || dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn csv_reader(path: &Path) -> Result<csv::Reader<std::fs::File>, ReportError> {
    let file = std::fs::File::open(path).map_err(|e| io_error(path, e))?;
    Ok(csv::ReaderBuilder::new().flexible(true).from_reader(file))
}

pub fn read_timeseries(path: &Path) -> Result<Timeseries, ReportError> {
    let mut reader = csv_reader(path)?;
    let names: Vec<String> = reader
        .headers()
        .map_err(|e| parse_error(path, e))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut columns: Vec<Vec<Option<f64>>> = vec![Vec::new(); names.len()];
    let mut numeric = vec![true; names.len()];
    let mut first_utc = None;
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            // A run killed mid-write may leave half a last line.
            Err(e) if e.is_io_error() => return Err(parse_error(path, e)),
            Err(_) => break,
        };
        for (i, column) in columns.iter_mut().enumerate() {
            let field = record.get(i).unwrap_or("").trim();
            if names[i] == "utc" && first_utc.is_none() {
                first_utc = Some(field.to_string());
            }
            let value = field.parse::<f64>().ok().filter(|x| x.is_finite());
            if value.is_none() && !field.is_empty() {
                numeric[i] = false;
            }
            column.push(value);
        }
    }
    let mut keep = numeric.iter();
    let mut kept_names = Vec::new();
    let mut kept_columns = Vec::new();
    for (name, column) in names.into_iter().zip(columns) {
        if *keep.next().unwrap_or(&false) {
            kept_names.push(name);
            kept_columns.push(column);
        }
    }
    Ok(Timeseries {
        names: kept_names,
        columns: kept_columns,
        first_utc,
    })
}

pub fn read_table(path: &Path) -> Result<Table, ReportError> {
    let mut reader = csv_reader(path)?;
    let header = reader
        .headers()
        .map_err(|e| parse_error(path, e))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| parse_error(path, e))?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok(Table { header, rows })
}

/// latency.csv (metric, percentile, value_us by name), or else every
/// `*.hgrm` file.
fn read_distributions(dir: &Path) -> Result<Vec<Distribution>, ReportError> {
    let csv_path = dir.join("latency.csv");
    if csv_path.is_file() {
        let table = read_table(&csv_path)?;
        let col = |name: &str| table.header.iter().position(|h| h == name);
        let (Some(m), Some(p), Some(v)) = (col("metric"), col("percentile"), col("value_us"))
        else {
            return Err(parse_error(
                &csv_path,
                "no metric, percentile and value_us columns",
            ));
        };
        let mut out: Vec<Distribution> = Vec::new();
        for row in &table.rows {
            let (Some(metric), Some(pct), Some(value)) = (
                row.get(m),
                row.get(p).and_then(|x| x.parse::<f64>().ok()),
                row.get(v).and_then(|x| x.parse::<f64>().ok()),
            ) else {
                continue;
            };
            match out.iter_mut().find(|d| &d.metric == metric) {
                Some(d) => d.steps.push((pct, value)),
                None => out.push(Distribution {
                    metric: metric.clone(),
                    steps: vec![(pct, value)],
                }),
            }
        }
        return Ok(out);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "hgrm"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|e| io_error(&path, e))?;
        let metric = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        out.push(Distribution {
            metric,
            steps: parse_hgrm(&text),
        });
    }
    Ok(out)
}

/// The `Value Percentile TotalCount 1/(1-Percentile)` rows of `.hgrm`
/// text, percentiles as 0 to 100.
pub fn parse_hgrm(text: &str) -> Vec<(f64, f64)> {
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#'))
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let value = fields.next()?.parse::<f64>().ok()?;
            let quantile = fields.next()?.parse::<f64>().ok()?;
            Some((quantile * 100.0, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_columns_are_found_by_name() {
        assert_eq!(latency_column("connect_p99_us"), Some(("connect", "p99")));
        assert_eq!(latency_column("rtt_max_us"), Some(("rtt", "max")));
        assert_eq!(
            latency_column("queue_wait_p999_us"),
            Some(("queue_wait", "p999"))
        );
        assert_eq!(latency_column("connect_syscall_us"), None);
        assert_eq!(latency_column("established"), None);
        assert_eq!(latency_column("_p50_us"), None);
    }

    #[test]
    fn timeseries_reads_by_header_and_keeps_unknown_number_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timeseries.csv");
        std::fs::write(
            &path,
            "utc,elapsed_s,active,failed_new_kind,connect_p50_us,note,rtt_max_us\n\
             2026-12-06 01:45:12.230,1,10,0,33,hello,\n\
             2026-12-06 01:45:13.230,2,20,3,35,x,7\n\
             2026-12-06 01:45:14.2",
        )
        .unwrap();
        let ts = read_timeseries(&path).unwrap();
        assert_eq!(
            ts.names,
            [
                "elapsed_s",
                "active",
                "failed_new_kind",
                "connect_p50_us",
                "rtt_max_us"
            ]
        );
        assert_eq!(ts.column("active").unwrap(), [Some(10.0), Some(20.0), None]);
        assert_eq!(ts.column("rtt_max_us").unwrap()[..2], [None, Some(7.0)]);
        assert_eq!(ts.failure_kinds(), ["new_kind"]);
        assert_eq!(ts.latency_metrics(), ["connect", "rtt"]);
        assert_eq!(ts.first_utc.as_deref(), Some("2026-12-06 01:45:12.230"));
    }

    #[test]
    fn a_ladder_reads_its_steps_beside_it_and_skips_one_without_results() {
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/limit");
        let dir = tempfile::tempdir().unwrap();
        let step1 = dir.path().join("step-1");
        std::fs::create_dir(&step1).unwrap();
        for file in ["summary.json", "timeseries.csv"] {
            std::fs::copy(fixture.join(file), step1.join(file)).unwrap();
        }
        std::fs::create_dir(dir.path().join("step-2")).unwrap();
        // Written elsewhere, then moved here: results_dir no longer exists.
        std::fs::write(
            dir.path().join("ladder.csv"),
            "step,change,ceiling,limit,at_attempt,evidence,remedy,results_dir
             1,start,50,server_closed,51,e,r,/gone/step-1
             2,more,0,none,,,,/gone/step-2
",
        )
        .unwrap();
        let Loaded::Ladder(ladder) = load(dir.path()).unwrap() else {
            panic!("not read as a ladder");
        };
        assert_eq!(ladder.steps.len(), 2);
        assert_eq!(ladder.steps[0]["ceiling"], 50);
        assert_eq!(ladder.runs.len(), 1);
        assert_eq!(ladder.runs[0].name, "step 1");
        assert_eq!(ladder.runs[0].timeseries.rows(), 6);
    }

    #[test]
    fn hgrm_rows_become_percentile_steps() {
        let text = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n      \
                    71.000 0.000000000000          1           1.00\n     \
                    117.000 0.500000000000         31           2.00\n   \
                    31119.000 1.000000000000        300\n\
                    #[Mean    =      955.647, StdDeviation   =     2571.677]\n";
        assert_eq!(
            parse_hgrm(text),
            [(0.0, 71.0), (50.0, 117.0), (100.0, 31119.0)]
        );
    }
}
