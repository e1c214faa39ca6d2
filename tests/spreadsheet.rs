//! The CSV files as a spreadsheet reads them (issue 12, item 15):
//! LibreOffice headless converts a real `timeseries.csv` and a `ladder.csv`
//! to flat XML (`.fods`), which states each cell's type; the `utc` cells
//! must be date-times and the text cells free of mojibake. And a row's
//! `target_rate_per_s` is that second's target, comparable with its
//! achieved rate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ceiling::explore::report::{self, Row};

use crate::util::{ceiling, out_dir, run_bounded, text};

/// Whether `soffice` is installed. Without it the caller skips with a
/// reason; under CI=true (where .ci/run installs it) a skip is a failure.
fn require_soffice(test: &str) -> bool {
    crate::util::require(
        test,
        crate::util::installed("soffice"),
        "LibreOffice's soffice (Debian: libreoffice-calc-nogui)",
    )
}

/// Converts `csv` to `.fods` with LibreOffice headless, its own profile in
/// `work`. `infilter`: the CSV import options (None: LibreOffice's
/// defaults). Returns the flat XML.
fn to_fods(csv: &Path, work: &Path, infilter: Option<&str>) -> String {
    let profile = work.join("profile");
    let mut cmd = Command::new("soffice");
    cmd.arg(format!(
        "-env:UserInstallation=file://{}",
        profile.display()
    ))
    .arg("--headless");
    if let Some(options) = infilter {
        cmd.arg(format!("--infilter=CSV:{options}"));
    }
    cmd.args(["--convert-to", "fods", "--outdir"])
        .arg(work)
        .arg(csv)
        .env("HOME", work);
    let out = run_bounded(cmd, Duration::from_secs(180));
    let fods: PathBuf = work.join(csv.with_extension("fods").file_name().unwrap());
    std::fs::read_to_string(&fods).unwrap_or_else(|e| {
        panic!(
            "soffice wrote no {}: {e}\nstdout:\n{}\nstderr:\n{}",
            fods.display(),
            text(&out.stdout),
            text(&out.stderr)
        )
    })
}

/// One cell of a `.fods` table: its `office:value-type` and text.
#[derive(Debug, Clone)]
struct Cell {
    value_type: String,
    attrs: String,
    text: String,
}

/// The first table's rows, each a list of cells (repeated cells expanded).
fn table_rows(fods: &str) -> Vec<Vec<Cell>> {
    let table = &fods[fods.find("<table:table ").expect("a table")..];
    let table = &table[..table.find("</table:table>").expect("table end")];
    let mut rows = Vec::new();
    for row in table.split("<table:table-row").skip(1) {
        let mut cells = Vec::new();
        for cell in row.split("<table:table-cell").skip(1) {
            let end = cell.find('>').unwrap();
            let attrs = &cell[..end];
            let value_type = attribute(attrs, "office:value-type").unwrap_or_default();
            let repeat: usize =
                attribute(attrs, "table:number-columns-repeated").map_or(1, |n| n.parse().unwrap());
            let text = if attrs.ends_with('/') {
                String::new()
            } else {
                paragraph_text(&cell[end + 1..])
            };
            let cell = Cell {
                value_type,
                attrs: attrs.to_string(),
                text,
            };
            cells.extend(std::iter::repeat_n(cell, repeat));
        }
        rows.push(cells);
    }
    rows
}

fn attribute(attrs: &str, name: &str) -> Option<String> {
    let start = attrs.find(&format!("{name}=\""))? + name.len() + 2;
    let len = attrs[start..].find('"')?;
    Some(attrs[start..start + len].to_string())
}

/// The text of a cell's `<text:p>`, entities decoded (`<text:s/>` is a
/// space).
fn paragraph_text(content: &str) -> String {
    let Some(start) = content.find("<text:p>") else {
        return String::new();
    };
    let content = &content[start + "<text:p>".len()..];
    let content = &content[..content.find("</text:p>").unwrap_or(content.len())];
    content
        .replace("<text:s/>", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// LibreOffice's Text Import dialog as it opens: comma-separated, `"`
/// quotes, UTF-8, from line 1, special numbers not detected.
const IMPORT_DIALOG_DEFAULTS: &str = "44,34,76,1,,0,false,true,false";

#[test]
fn libreoffice_reads_the_utc_column_as_date_times() {
    let test = "libreoffice_reads_the_utc_column_as_date_times";
    if !require_soffice(test) {
        return;
    }
    let (tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args([
        "run",
        "--connections",
        "20",
        "--rate",
        "10",
        "--hold",
        "end",
        "--duration",
        "3s",
        "--ui",
        "none",
        "--out",
    ])
    .arg(&out);
    let run = run_bounded(cmd, Duration::from_secs(60));
    assert!(run.status.success(), "{}", text(&run.stderr));
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    let utc: Vec<&str> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert!(utc.len() >= 3, "{csv}");

    let rows = table_rows(&to_fods(
        &out.join("timeseries.csv"),
        tmp.path(),
        Some(IMPORT_DIALOG_DEFAULTS),
    ));
    assert_eq!(rows[0][1].text, "utc");
    assert_eq!(rows.len(), utc.len() + 1);
    for (row, written) in rows[1..].iter().zip(&utc) {
        let cell = &row[1];
        assert_eq!(
            cell.value_type, "date",
            "utc {written} imported as {cell:?}"
        );
        // The same instant, to the second (`2026-12-06T01:02:03.46`).
        let date_value = attribute(&cell.attrs, "office:date-value").unwrap();
        assert_eq!(
            date_value[..19],
            written[..19].replace(' ', "T"),
            "{cell:?}"
        );
        // The numbers stay numbers.
        assert_eq!(row[0].value_type, "float", "{row:?}");
    }
}

#[test]
fn libreoffice_imports_ladder_csv_without_mojibake() {
    let test = "libreoffice_imports_ladder_csv_without_mojibake";
    if !require_soffice(test) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("ladder.csv");
    // The signs the ladder's own texts use (explore's changes, classify's
    // evidence).
    let rows = [Row {
        step: 2,
        change: "widen ip_local_port_range 32768-60999 → 1024-65535 (64,512 ports per \
                 source IP and target)"
            .into(),
        ceiling: 28_231,
        limit: "port_exhaustion".into(),
        at_attempt: Some(28_232),
        evidence: "the port range gives 28,232 ports per destination: ≈ 28,232 connections \
                   for 1 source IP × 1 target; 3 closes at 2.0 ± 0.1 s…"
            .into(),
        remedy: "add source IPs: 127.0.0.2-127.0.0.4 (3 × 64,512 ports)".into(),
        results_dir: "out/step-2".into(),
    }];
    report::write_csv(&path, &rows).unwrap();

    // LibreOffice's own defaults: the character set is not guessed as
    // UTF-8, which is what turned `→` into `â†’`.
    let table = table_rows(&to_fods(&path, tmp.path(), None));
    assert_eq!(table[0][1].text, "change");
    let cells: Vec<&str> = table[1].iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        cells[1],
        "widen ip_local_port_range 32768-60999 -> 1024-65535 (64,512 ports per source IP and \
         target)"
    );
    assert_eq!(
        cells[5],
        "the port range gives 28,232 ports per destination: ~ 28,232 connections for 1 source \
         IP x 1 target; 3 closes at 2.0 +/- 0.1 s..."
    );
    assert_eq!(
        cells[6],
        "add source IPs: 127.0.0.2-127.0.0.4 (3 x 64,512 ports)"
    );
    for cell in &cells {
        assert!(cell.is_ascii(), "mojibake: {cell}");
    }
}

/// `target_rate_per_s` is the second's target: for a ramp 0..200/4s (50·t
/// per s) the mean over each second (25, 75, 125, 175), not the rate at its
/// end (50, 100, ...); and in the second where the last attempts were
/// scheduled (430 = 400 during the ramp + 30 at 200/s) it is not 0.
#[test]
fn ramp_rows_target_rate_is_the_ramps_mean_over_each_second() {
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args([
        "run",
        "--connections",
        "430",
        "--ramp",
        "0..200/4s",
        "--hold",
        "end",
        "--duration",
        "6s",
        "--ui",
        "none",
        "--out",
    ])
    .arg(&out);
    let run = run_bounded(cmd, Duration::from_secs(60));
    assert!(run.status.success(), "{}", text(&run.stderr));
    let csv = std::fs::read_to_string(out.join("timeseries.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|c| *c == name).unwrap();
    let (target, attempted) = (column("target_rate_per_s"), column("attempted"));
    let rows: Vec<(f64, u64)> = lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (
                fields[target].parse().unwrap(),
                fields[attempted].parse().unwrap(),
            )
        })
        .collect();
    let targets: Vec<f64> = rows.iter().map(|r| r.0).collect();
    assert!(rows.len() >= 5, "{csv}");
    for (k, mean) in [25.0, 75.0, 125.0, 175.0].into_iter().enumerate() {
        assert!(
            (targets[k] - mean).abs() <= 0.1 * mean + 5.0,
            "second {}: target {} for a ramp whose mean is {mean} there; targets \
             {targets:?}\n{csv}",
            k + 1,
            targets[k]
        );
    }
    // The last attempts were scheduled in the fifth second (or at the very
    // end of the fourth, if that row was cut late): its target is theirs.
    let last_scheduled = rows
        .iter()
        .position(|r| r.1 == 430)
        .expect("every attempt made");
    assert!(
        targets[last_scheduled] > 0.0,
        "the second in which the last attempts were scheduled has target 0: \
         {targets:?}\n{csv}"
    );
    // The targets add up to the attempts scheduled (each row ~1 s).
    let sum: f64 = targets.iter().sum();
    assert!((sum - 430.0).abs() <= 0.08 * 430.0, "{targets:?}\n{csv}");
}
