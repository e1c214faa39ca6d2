//! report.html: its data read back against the results files, its structure
//! against a golden file, and each report shape drawn by a real browser
//! (headless Chromium): every chart drew, no script error, no request.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

use serde_json::Value;

use crate::util::{ceiling, out_dir, run_bounded, summary, text};

/// The JSON blocks `<script type="application/json" class="CLASS">`.
fn json_blocks(html: &str, class: &str) -> Vec<Value> {
    let open = format!("<script type=\"application/json\" class=\"{class}\">");
    html.split(&open)
        .skip(1)
        .map(|rest| {
            let json = &rest[..rest.find("</script>").expect("the block ends")];
            assert!(
                !json.contains('<') && !json.contains('>') && !json.contains('&'),
                "unescaped < > & in a JSON block"
            );
            serde_json::from_str(json).expect("the block is JSON")
        })
        .collect()
}

/// A column of timeseries.csv by its header name.
fn column(dir: &Path, name: &str) -> Vec<f64> {
    let mut reader = csv::Reader::from_path(dir.join("timeseries.csv")).unwrap();
    let i = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no {name} column"));
    reader
        .records()
        .map(|r| r.unwrap()[i].parse().unwrap())
        .collect()
}

fn numbers(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// A run against the built-in target that hits no limit.
fn plain_run(out: &Path) {
    let mut cmd = ceiling();
    cmd.args([
        "run", "--ui", "none", "-c", "2000", "-r", "2000", "--hold", "1s", "--out",
    ])
    .arg(out);
    let output = run_bounded(cmd, Duration::from_secs(30));
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn the_pages_data_match_summary_json_and_timeseries_csv() {
    let (_tmp, out) = out_dir();
    crate::util::capped_run(&out, "300", "200");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let runs = json_blocks(&html, "ceiling-run");
    assert_eq!(runs.len(), 1);
    let data = &runs[0];
    let s = summary(&out);
    assert_eq!(data["totals"], s["totals"]);
    assert_eq!(data["first_limit"]["kind"], "server_closed");
    assert_eq!(data["first_limit"]["kind"], s["first_limit"]["kind"]);
    assert_eq!(
        data["first_limit"]["at_elapsed_s"],
        s["first_limit"]["at_elapsed_s"]
    );
    assert_eq!(numbers(&data["t"]), column(&out, "elapsed_s"));
    for name in [
        "active",
        "established",
        "failed",
        "attempt_rate_per_s",
        "failed_server_closed",
        "connect_p99_us",
    ] {
        assert_eq!(numbers(&data["series"][name]), column(&out, name), "{name}");
    }
    // Kinds that never failed are not sent.
    assert!(data["series"].get("failed_refused").is_none());
    assert_eq!(data["failure_kinds"], serde_json::json!(["server_closed"]));
    // The first limit is marked on the time axis.
    assert_eq!(data["marks"][0]["first_limit"], true);
    assert_eq!(data["marks"][0]["kind"], "server_closed");
    // The percentile plot has each step of latency.csv.
    let steps = std::fs::read_to_string(out.join("latency.csv"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("connect,"))
        .count();
    let connect = &data["hdr"][0];
    assert_eq!(connect["metric"], "connect");
    assert_eq!(connect["x"].as_array().unwrap().len(), steps);
    // The verdict is written in the page itself.
    assert!(
        html.contains("First limit: <b>server_closed</b>"),
        "no verdict"
    );
    assert_self_contained(&html);
}

/// Nothing in the page can load from elsewhere: the CSP forbids it, and no
/// src or href names a URL.
fn assert_self_contained(html: &str) {
    assert!(html.contains(
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">"
    ));
    for attr in ["src=", "href="] {
        for quote in ["\"", "'"] {
            for scheme in ["http:", "https:", "//"] {
                let needle = format!("{attr}{quote}{scheme}");
                assert!(!html.contains(&needle), "the page has {needle}");
            }
        }
    }
}

/// The page with the parts that vary (the scripts and style, which are
/// vendored or tested in the browser, and the version) replaced.
fn normalise(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script>\n") {
        let body_start = start + "<script>\n".len();
        let end = body_start + rest[body_start..].find("</script>").unwrap();
        let body = &rest[body_start..end];
        out.push_str(&rest[..body_start]);
        out.push_str(
            if body.starts_with("/*! https://github.com/leeoniya/uPlot") {
                "[uPlot]\n"
            } else {
                "[page.js]\n"
            },
        );
        rest = &rest[end..];
    }
    out.push_str(rest);
    let style_start = out.find("<style>\n").unwrap() + "<style>\n".len();
    let style_end = out.find("</style>").unwrap();
    out.replace_range(style_start..style_end, "[style]\n");
    out.replace(
        &format!("ceiling {}", env!("CARGO_PKG_VERSION")),
        "ceiling [version]",
    )
}

/// The fixture is a real run's directory with fields a later ceiling may
/// add (totals.connect_failed, held_at_end, ...; a verdict; utc as
/// `YYYY-MM-DD HH:MM:SS.mmm`; an unknown column): the page reads them
/// without failing and shows what it knows.
#[test]
fn report_page_structure_matches_the_golden_file() {
    let tmp = tempfile::tempdir().unwrap();
    let page = tmp.path().join("report.html");
    let output = ceiling()
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["report", "tests/fixtures/report/limit", "--out"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains("<td>held at end</td>"),
        "new totals not shown"
    );
    assert!(
        html.contains("a connection cap</p>"),
        "the verdict field not shown"
    );
    insta::assert_snapshot!("report_structure", normalise(&html));
}

#[test]
fn several_directories_need_out_and_a_directory_without_results_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/limit");
    let output = ceiling()
        .arg("report")
        .arg(&fixture)
        .arg(&fixture)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("say where it goes with --out FILE"),
        "{}",
        text(&output.stderr)
    );
    let output = ceiling().arg("report").arg(tmp.path()).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("is not a results directory"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // The same directory twice is an overlay of two runs, named apart.
    let page = tmp.path().join("two.html");
    let output = ceiling()
        .arg("report")
        .arg(&fixture)
        .arg(&fixture)
        .arg("--out")
        .arg(&page)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let html = std::fs::read_to_string(&page).unwrap();
    let names: Vec<Value> = json_blocks(&html, "ceiling-run")
        .into_iter()
        .map(|r| r["name"].clone())
        .collect();
    assert_eq!(names.len(), 2);
    assert_ne!(names[0], names[1]);
}

/// Headless Chromium, or None (skipped with a reason; a failure under
/// CI=true).
fn require_chromium(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let reason = format!("{test}: skipped: needs chromium (apt-get install chromium)");
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{reason}; under CI=true a skip is a failure");
        }
        eprintln!("{reason}");
    }
    found
}

/// Opens `page` in headless Chromium that may resolve no host name, lets
/// it run 5 s of virtual time and returns the DOM it ends with; with
/// `screenshot`, saves one at 1200×2000 too.
fn browse(chromium: &Path, page: &Path, screenshot: Option<&Path>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=5000",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()));
    match screenshot {
        Some(png) => cmd
            .arg(format!("--screenshot={}", png.display()))
            .arg("--window-size=1200,2000"),
        None => cmd.arg("--dump-dom"),
    };
    cmd.arg(format!("file://{}", page.display()));
    // Into files: the DOM is larger than a pipe holds, and run_bounded
    // reads its pipes only once the process ended.
    let stdout = profile.path().join("stdout");
    let stderr = profile.path().join("stderr");
    cmd.stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap());
    let mut child = cmd.spawn().expect("chromium starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {}", page.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        status.success(),
        "chromium failed on {}: {}",
        page.display(),
        std::fs::read_to_string(&stderr).unwrap_or_default()
    );
    std::fs::read_to_string(&stdout).unwrap()
}

/// An attribute of the dumped DOM's `<body>` tag.
fn body_attr(dom: &str, name: &str) -> Option<String> {
    let start = dom.find("<body")?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let needle = format!("{name}=\"");
    let at = tag.find(&needle)? + needle.len();
    Some(tag[at..at + tag[at..].find('"')?].to_string())
}

/// Opens the page and checks what the page says of itself: every chart
/// drew, no script error, no blocked request; and the charts it has.
fn assert_draws(chromium: &Path, page: &Path, kinds: &[&str], shots: &Path, shape: &str) {
    let dom = browse(chromium, page, None);
    assert_eq!(
        body_attr(&dom, "data-errors"),
        None,
        "{shape}: the page reported errors"
    );
    let charts: usize = body_attr(&dom, "data-charts")
        .expect("data-charts")
        .parse()
        .unwrap();
    assert_eq!(charts, kinds.len(), "{shape}: charts");
    assert_eq!(
        body_attr(&dom, "data-drawn"),
        Some(charts.to_string()),
        "{shape}: not every chart drew"
    );
    for kind in kinds {
        assert!(
            dom.contains(&format!("data-chart=\"{kind}\"")),
            "{shape}: no {kind} chart"
        );
    }
    // uPlot made a canvas in each.
    assert_eq!(dom.matches("<canvas").count(), charts, "{shape}: canvases");
    let png = shots.join(format!("{shape}.png"));
    browse(chromium, page, Some(&png));
    assert!(png.is_file(), "{shape}: no screenshot");
    eprintln!("{shape}: screenshot {}", png.display());
}

#[test]
fn every_report_shape_draws_in_headless_chromium_without_errors_or_requests() {
    let Some(chromium) = require_chromium("report in a browser") else {
        return;
    };
    // Kept after the test (a CI artifact): target/tmp/report-shots/.
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let plain = tmp.path().join("plain");
    plain_run(&plain);
    let limit = tmp.path().join("limit");
    crate::util::capped_run(&limit, "300", "200");
    let ladder = tmp.path().join("ladder");
    let mut cmd = ceiling();
    cmd.args(["explore", "--connections", "1000", "--ui", "none", "--out"])
        .arg(&ladder);
    let output = run_bounded(cmd, Duration::from_secs(60));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let overlay = tmp.path().join("overlay.html");
    let output = ceiling()
        .arg("report")
        .args([&plain, &limit, &ladder.join("step-1")])
        .arg("--out")
        .arg(&overlay)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));

    let over_time = ["connections", "rate", "latency"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        over_time.iter().chain(extra).copied().collect()
    };
    assert_draws(
        &chromium,
        &plain.join("report.html"),
        &with(&["hdr"]),
        &shots,
        "plain",
    );
    assert_draws(
        &chromium,
        &limit.join("report.html"),
        &with(&["failures", "hdr"]),
        &shots,
        "limit",
    );
    assert_draws(
        &chromium,
        &ladder.join("report.html"),
        &with(&["ladder", "hdr"]),
        &shots,
        "ladder",
    );
    assert_draws(
        &chromium,
        &overlay,
        &with(&["failures", "hdr"]),
        &shots,
        "overlay",
    );
    for page in [
        plain.join("report.html"),
        limit.join("report.html"),
        overlay,
    ] {
        assert_self_contained(&std::fs::read_to_string(page).unwrap());
    }

    // The check can fail: a page that tries to fetch an image says so.
    let html = std::fs::read_to_string(plain.join("report.html")).unwrap();
    let fetching = tmp.path().join("fetching.html");
    std::fs::write(
        &fetching,
        html.replace(
            "</body>",
            "<img src=\"https://example.invalid/x.png\"></body>",
        ),
    )
    .unwrap();
    let dom = browse(&chromium, &fetching, None);
    let errors = body_attr(&dom, "data-errors").unwrap_or_default();
    assert!(
        errors.contains("blocked request: https://example.invalid/x.png"),
        "a request went unnoticed: {errors:?}"
    );
}

#[test]
fn a_run_killed_before_its_summary_still_gets_its_charts() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report/limit");
    std::fs::copy(
        fixture.join("timeseries.csv"),
        tmp.path().join("timeseries.csv"),
    )
    .unwrap();
    let output = ceiling().arg("report").arg(tmp.path()).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let html = std::fs::read_to_string(tmp.path().join("report.html")).unwrap();
    assert!(
        html.contains("No summary.json"),
        "no word of the missing summary"
    );
    assert!(
        html.contains("<body data-charts=\"4\">"),
        "charts from timeseries.csv"
    );
    let runs = json_blocks(&html, "ceiling-run");
    assert_eq!(
        numbers(&runs[0]["series"]["active"]),
        column(tmp.path(), "active")
    );
}

/// A request-mode run against the built-in server, short pool so requests
/// queue.
fn request_run(out: &Path, pool: &str) {
    let mut cmd = ceiling();
    cmd.args([
        "run",
        "--ui",
        "none",
        "--mode",
        "request",
        "--protocol",
        "http",
        "--pool",
        pool,
        "--rate",
        "400",
        "--duration",
        "2s",
        "--out",
    ])
    .arg(out);
    let output = run_bounded(cmd, Duration::from_secs(60));
    assert!(output.status.success(), "{}", text(&output.stderr));
}

#[test]
fn a_request_runs_page_has_its_request_series_and_figures() {
    let (_tmp, out) = out_dir();
    request_run(&out, "5");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let runs = json_blocks(&html, "ceiling-run");
    let data = &runs[0];
    let s = summary(&out);
    assert_eq!(data["requests"], s["requests"]);
    assert_eq!(data["pool"], 5);
    for name in [
        "requests_sent_per_s",
        "responses_per_s",
        "request_errors_per_s",
        "rejects_per_s",
        "queue_depth",
        "busy_connections",
        "total_p99_us",
    ] {
        assert_eq!(
            numbers(&data["series"][name]),
            column(&out, name),
            "{name} as timeseries.csv has it"
        );
    }
    // The requests asked per second, drawn with the requests (not with the
    // pool's unpaced connects).
    assert_eq!(
        numbers(&data["series"]["request_target_per_s"]),
        column(&out, "target_rate_per_s")
    );
    assert!(data["series"]["target_rate_per_s"].is_null());
    let asked = numbers(&data["series"]["request_target_per_s"]);
    assert!(
        asked.iter().any(|r| (300.0..=420.0).contains(r)),
        "{asked:?}"
    );
    let metrics: Vec<&str> = data["hdr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["metric"].as_str().unwrap())
        .collect();
    for metric in ["connect", "queue", "service", "total"] {
        assert!(metrics.contains(&metric), "no {metric} distribution");
    }
    for chart in ["data-chart=\"requests\"", "data-chart=\"pool\""] {
        assert!(html.contains(chart), "no {chart}");
    }
    let sent = s["requests"]["sent"].as_u64().unwrap();
    assert!(sent > 0);
    let sent_shown = format!(
        "Requests over a pool of 5: {} sent",
        ceiling::model::thousands(sent)
    );
    assert!(html.contains(&sent_shown), "verdict lacks '{sent_shown}'");
    assert!(html.contains("<h3>Requests</h3>"), "no requests table");
    assert!(
        html.contains("<td>status: 2xx</td>"),
        "no status classes in the table"
    );
}

#[test]
fn a_request_runs_page_draws_in_headless_chromium() {
    let Some(chromium) = require_chromium("request report in a browser") else {
        return;
    };
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let short = tmp.path().join("short");
    request_run(&short, "5");
    let ample = tmp.path().join("ample");
    request_run(&ample, "50");
    let overlay = tmp.path().join("overlay.html");
    let output = ceiling()
        .arg("report")
        .args([&short, &ample])
        .arg("--out")
        .arg(&overlay)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    // connect and total per second, each a latency chart.
    let kinds = [
        "connections",
        "rate",
        "requests",
        "pool",
        "latency",
        "latency",
        "hdr",
    ];
    assert_draws(
        &chromium,
        &short.join("report.html"),
        &kinds,
        &shots,
        "request",
    );
    assert_draws(&chromium, &overlay, &kinds, &shots, "request-overlay");
    let html = std::fs::read_to_string(&overlay).unwrap();
    assert!(
        html.contains("<th>requests sent</th>"),
        "no request columns"
    );
    // Schema 2 has no totals.failed: the failure events by kind count.
    let row = &html[html.find("<tr><td>short</td>").expect("short's row")..];
    let row = &row[..row.find("</tr>").unwrap()];
    let cells: Vec<&str> = row
        .split("</td>")
        .filter_map(|c| c.rsplit('>').next())
        .collect();
    assert_eq!(cells[7], "0", "failed, in {row}");
    assert_self_contained(&html);
}

#[test]
fn a_sweep_directory_reports_its_table_verdict_and_overlaid_steps() {
    let (_tmp, out) = out_dir();
    let mut cmd = ceiling();
    cmd.args([
        "sweep",
        "--pool",
        "2,20",
        "--rate",
        "300",
        "--goal",
        "p99<1h",
        "--duration",
        "1s",
        "--out",
    ])
    .arg(&out);
    let output = run_bounded(cmd, Duration::from_secs(120));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("smallest pool meeting the goal: 2"));
    // The sweep writes its page; `ceiling report` draws it again.
    assert!(out.join("report.html").is_file(), "no report.html");
    std::fs::remove_file(out.join("report.html")).unwrap();
    let output = ceiling().arg("report").arg(&out).output().unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("<h2>Pool sweep: "), "no sweep section");
    assert!(html.contains("smallest pool meeting the goal: 2"));
    assert!(html.contains("One run per pool size (sweep.csv)"));
    let names: Vec<String> = json_blocks(&html, "ceiling-run")
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["pool 2", "pool 20"]);
    let sweeps = json_blocks(&html, "ceiling-sweep");
    assert_eq!(sweeps.len(), 1);
    assert_eq!(numbers(&sweeps[0]["pool"]), [2.0, 20.0]);
    assert_eq!(sweeps[0]["meets_goal"], serde_json::json!([true, true]));
    // compare takes a sweep's steps, not the sweep.
    let output = ceiling()
        .arg("compare")
        .arg(&out)
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(
        text(&output.stderr).contains("is a sweep directory: compare its steps"),
        "{}",
        text(&output.stderr)
    );
    let Some(chromium) = require_chromium("sweep report in a browser") else {
        return;
    };
    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-shots");
    std::fs::create_dir_all(&shots).unwrap();
    let kinds = [
        "sweep",
        "connections",
        "rate",
        "requests",
        "pool",
        "latency",
        "latency",
        "hdr",
    ];
    assert_draws(&chromium, &page, &kinds, &shots, "sweep");
}
