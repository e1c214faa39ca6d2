//! A results directory on a full filesystem (issue 12, item 1): the real
//! binary writes to a tiny tmpfs mounted in a private mount namespace the
//! test creates (nothing is mounted on the host). The text summary still
//! reaches stdout, the files that fit are written, the others are named on
//! stderr with the OS error, no CSV ends in half a row, and the exit status
//! is 1.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::{bin, run_bounded, text};

/// Bytes of a tmpfs block (a page).
const PAGE: u64 = 4096;

/// Whether this process may create a mount namespace and mount a tmpfs in
/// it. Outside root the caller skips with a reason; under CI=true a skip is
/// a failure.
fn require_mount_ns(test: &str) -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && Command::new("unshare")
            .args(["-m", "true"])
            .status()
            .is_ok_and(|s| s.success());
    crate::util::require(
        test,
        ok,
        "root and unshare (util-linux) to mount a tmpfs in a mount namespace of its own",
    )
}

/// What a run on a nearly full tmpfs left.
struct FullRun {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// Names of the files in the results directory, sorted.
    files: Vec<String>,
    /// A copy of the results directory, made before the tmpfs went away.
    results: tempfile::TempDir,
}

/// Runs `ceiling run ARGS --out <tmpfs>/run --ui none` in a new mount
/// namespace, on a tmpfs filled up to `free_pages` pages before the run,
/// then copies what the run left out of the tmpfs.
fn run_on_full_tmpfs(free_pages: u64, args: &str, bound: Duration) -> FullRun {
    let mnt = tempfile::tempdir().unwrap();
    let results = tempfile::tempdir().unwrap();
    let script = format!(
        r#"mount --make-rprivate /
mount -t tmpfs -o size=256k tmpfs "$MNT"
avail=$(stat -f -c %a "$MNT")
dd if=/dev/zero of="$MNT/filler" bs={PAGE} count=$((avail - {free_pages})) 2>/dev/null
test "$(stat -f -c %a "$MNT")" -eq {free_pages}
set +e
"$CEILING" run {args} --ui none --out "$MNT/run"
code=$?
set -e
cp -a "$MNT/run/." "$RESULTS/"
exit $code"#
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "sh", "-euc", &script])
        .env("CEILING", bin())
        .env("MNT", mnt.path())
        .env("RESULTS", results.path());
    let out = run_bounded(cmd, bound);
    let mut files: Vec<String> = std::fs::read_dir(results.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    FullRun {
        code: out.status.code(),
        stdout: text(&out.stdout),
        stderr: text(&out.stderr),
        files,
        results,
    }
}

impl FullRun {
    fn context(&self) -> String {
        format!(
            "exit {:?}\nfiles: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.code, self.files, self.stdout, self.stderr
        )
    }

    /// The summary printed at the end of a run.
    fn assert_summary_on_stdout(&self) {
        for needle in ["connections", "attempted", "first limit:", "results:"] {
            assert!(
                self.stdout.contains(needle),
                "no {needle:?} on stdout\n{}",
                self.context()
            );
        }
    }

    /// Every CSV left ends in a newline, and every row has the header's
    /// field count; no temporary file is left behind.
    fn assert_no_partial_rows(&self) {
        for name in &self.files {
            assert!(
                !name.ends_with(".tmp"),
                "temporary file {name} left\n{}",
                self.context()
            );
            if !name.ends_with(".csv") {
                continue;
            }
            let content = std::fs::read_to_string(self.results.path().join(name)).unwrap();
            assert!(
                content.ends_with('\n'),
                "{name} ends in a partial row: {:?}\n{}",
                &content[content.len().saturating_sub(80)..],
                self.context()
            );
            let mut lines = content.lines();
            let fields = lines.next().unwrap().split(',').count();
            for (i, line) in lines.enumerate() {
                assert_eq!(
                    line.split(',').count(),
                    fields,
                    "{name} row {} has another field count than its header: {line:?}",
                    i + 1
                );
            }
        }
    }

    /// The files named on stderr as not written.
    fn assert_named_unwritten(&self, names: &[&str]) {
        let line = self
            .stderr
            .lines()
            .find(|l| l.contains("not written:"))
            .unwrap_or_else(|| panic!("no 'not written' message\n{}", self.context()));
        for name in names {
            assert!(
                line.contains(&format!("{name}: No space left on device"))
                    || line.contains(&format!("{name}, its last")),
                "{name} not named with its error\n{}",
                self.context()
            );
        }
        assert!(
            line.contains("No space left on device (os error 28)"),
            "{}",
            self.context()
        );
    }

    fn timeseries_rows(&self) -> usize {
        let path = self.results.path().join("timeseries.csv");
        std::fs::read_to_string(path).map_or(0, |t| t.lines().count().saturating_sub(1))
    }
}

fn is_file(dir: &Path, name: &str) -> bool {
    dir.join(name).is_file()
}

/// One free page: the header and ~34 rows fit, then a row is cut short by
/// the full disk mid-run. The run goes on to its end (every attempt made,
/// the last at 37.5 s),
/// the rows kept in memory are tried again at the end, and nothing else
/// fits.
#[test]
fn root_disk_full_mid_run_keeps_running_and_names_every_file_not_written() {
    let test = "root_disk_full_mid_run_keeps_running_and_names_every_file_not_written";
    if !require_mount_ns(test) {
        return;
    }
    let run = run_on_full_tmpfs(
        1,
        "--connections 76 --rate 2 --hold end --duration 40s",
        Duration::from_secs(120),
    );
    assert_eq!(run.code, Some(1), "{}", run.context());
    run.assert_summary_on_stdout();
    // Every attempt was made, the last ones after the disk was full: a
    // failed write did not stop the engine.
    assert!(
        run.stdout
            .lines()
            .any(|l| l.trim_start().starts_with("attempted")
                && l.split_whitespace().last() == Some("76")),
        "the run stopped early\n{}",
        run.context()
    );
    run.assert_named_unwritten(&[
        "timeseries.csv",
        "failures.csv",
        "sources.csv",
        "latency.csv",
        "connect.hgrm",
        "connect.hlog",
        "summary.json",
    ]);
    assert_eq!(run.files, ["timeseries.csv"], "{}", run.context());
    // The rows up to the full page are kept, none past it.
    let rows = run.timeseries_rows();
    assert!((25..40).contains(&rows), "{rows} rows\n{}", run.context());
    assert!(
        std::fs::metadata(run.results.path().join("timeseries.csv"))
            .unwrap()
            .len()
            <= PAGE
    );
    run.assert_no_partial_rows();
}

/// Two free pages: the time series of a short run fits in one, the first
/// end-of-run file (failures.csv) in the other, and the rest do not.
#[test]
fn root_disk_full_at_the_end_writes_what_fits_and_names_the_rest() {
    let test = "root_disk_full_at_the_end_writes_what_fits_and_names_the_rest";
    if !require_mount_ns(test) {
        return;
    }
    let run = run_on_full_tmpfs(
        2,
        "--connections 20 --rate 10 --hold end --duration 3s",
        Duration::from_secs(60),
    );
    assert_eq!(run.code, Some(1), "{}", run.context());
    run.assert_summary_on_stdout();
    run.assert_named_unwritten(&[
        "sources.csv",
        "latency.csv",
        "connect.hgrm",
        "connect.hlog",
        "summary.json",
    ]);
    assert!(
        !run.stderr.contains("timeseries.csv") && !run.stderr.contains("failures.csv:"),
        "{}",
        run.context()
    );
    let dir = run.results.path();
    assert!(is_file(dir, "timeseries.csv") && is_file(dir, "failures.csv"));
    assert_eq!(
        run.files,
        ["failures.csv", "timeseries.csv"],
        "{}",
        run.context()
    );
    assert!(run.timeseries_rows() >= 3, "{}", run.context());
    run.assert_no_partial_rows();
}
