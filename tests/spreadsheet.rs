//! The CSV files as a spreadsheet imports them (issue 12, item 15):
//! LibreOffice headless converts a real `timeseries.csv` and a `ladder.csv`
//! to flat XML (`.fods`), which states each cell's type; the `utc` cells
//! must be date-times and the text cells free of mojibake.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ceiling::explore::report::{self, Row};

use crate::util::{ceiling, out_dir, run_bounded, text};

/// Whether `soffice` is installed. Without it the caller skips with a
/// reason; under CI=true (where .ci/run installs it) a skip is a failure.
fn require_soffice(test: &str) -> bool {
    let ok = Command::new("soffice")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        let reason = format!(
            "{test}: skipped: needs LibreOffice's soffice (Debian: libreoffice-calc-nogui)"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}; under CI=true a skip is a failure");
        }
        eprintln!("{reason}");
    }
    ok
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
