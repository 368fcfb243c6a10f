//! `pecr perf` as perf/suite7.sh runs it: the real binary reading Suite 7
//! summaries from files, its exit codes (0 no regression, 1 regression,
//! 2 a file it cannot use) and the files it writes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn pecr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pecr"))
        .args(args)
        .output()
        .expect("the pecr binary runs")
}

/// `pecr perf compare --baseline B --current C`, then `extra`.
fn compare(baseline: &str, current: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "perf",
        "compare",
        "--baseline",
        baseline,
        "--current",
        current,
    ];
    args.extend_from_slice(extra);
    pecr(&args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A fresh folder of this test's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pecr-perf-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    dir
}

/// A summary of two scenarios as perf/suite7.sh writes it.
fn summary(mode: &str, run_throughput: f64, run_p99: f64) -> Value {
    json!({
        "schema": "pecr.suite7.v1",
        "mode": mode,
        "commit": "abc1234",
        "measured_at": "2026-12-07T10:00:00Z",
        "machine": {"cpus": "2", "loadavg": "1.00 1.00 1.00"},
        "scenarios": [
            {
                "name": "run_baseline", "kind": "run", "engine": "baseline",
                "requests": 2000, "duration_s": 20.0, "throughput_per_s": run_throughput,
                "latency_ms": {"p50": 15.0, "p95": 22.0, "p99": run_p99},
                "error_rate": 0.0, "terminal_modes": {"SUPPORTED": 2000},
                "cpu_ms_per_request": 2.7
            },
            {
                "name": "fault_ledger_restart", "kind": "fault", "engine": "baseline",
                "requests": 900, "duration_s": 20.0, "throughput_per_s": 45.0,
                "latency_ms": {"p50": 20.0, "p95": 90.0, "p99": 150.0},
                "error_rate": 0.0,
                "terminal_modes": {"SUPPORTED": 600, "ERR_LEDGER_UNAVAILABLE": 300}
            }
        ]
    })
}

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).expect("write");
    path.display().to_string()
}

#[test]
fn compare_exits_1_on_a_regression_and_writes_its_verdicts() {
    let dir = scratch("compare");
    let baseline = write(&dir, "baseline.json", &summary("full", 100.0, 30.0));
    let same = write(&dir, "same.json", &summary("full", 98.0, 31.0));
    let slower = write(&dir, "slower.json", &summary("full", 70.0, 45.0));
    let verdicts = dir.join("verdicts.json").display().to_string();

    let output = compare(&baseline, &same, &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("0 regression(s) in 2 scenario(s)"));

    let output = compare(&baseline, &slower, &["--output-json", &verdicts]);
    assert_eq!(output.status.code(), Some(1));
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains("throughput_per_s 100.000 → 70.000, below the limit 80.000"),
        "{stdout}"
    );
    assert!(
        stdout.contains("p99_ms 30.000 → 45.000, above the limit 37.500"),
        "{stdout}"
    );
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&verdicts).expect("verdicts written"))
            .expect("JSON");
    assert_eq!(written["regressions"], 1);
    assert_eq!(written["scenarios"][0]["status"], "regression");
    assert_eq!(written["scenarios"][1]["status"], "ok");

    // A wider tolerance lets the same figures pass.
    let output = compare(&baseline, &slower, &["--tolerance", "1"]);
    assert_eq!(output.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn files_it_cannot_use_are_usage_errors() {
    let dir = scratch("usage");
    let baseline = write(&dir, "baseline.json", &summary("full", 100.0, 30.0));
    let short = write(&dir, "short.json", &summary("short", 100.0, 30.0));
    let mut other = summary("full", 100.0, 30.0);
    other["schema"] = json!("pecr.suite7.v0");
    let other = write(&dir, "other.json", &other);
    let mut extra = summary("full", 100.0, 30.0);
    extra["scenarios"][0]["surprise"] = json!(1);
    let extra = write(&dir, "extra.json", &extra);
    let missing = dir.join("missing.json").display().to_string();

    for (current, needle) in [
        (&short, "same mode"),
        (&other, "pecr.suite7.v0"),
        (&extra, "surprise"),
        (&missing, "cannot read"),
    ] {
        let output = compare(&baseline, current, &[]);
        assert_eq!(output.status.code(), Some(2), "{current}");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        assert!(output.stdout.is_empty());
    }
    // `=`, or clap reads -1 as a flag and never asks the range check.
    let output = compare(&baseline, &baseline, &["--tolerance=-1"]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("expected a number in 0..=100"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn matrix_writes_markdown_json_and_a_chart() {
    let dir = scratch("matrix");
    let baseline = write(&dir, "baseline.json", &summary("full", 100.0, 30.0));
    let rlm = write(&dir, "rlm.json", &summary("full", 50.0, 60.0));
    let (json_out, md_out, svg_out) = (
        dir.join("m.json").display().to_string(),
        dir.join("out/m.md").display().to_string(),
        dir.join("m.svg").display().to_string(),
    );
    let output = pecr(&[
        "perf",
        "matrix",
        "--baseline",
        &baseline,
        "--candidate",
        &format!("baseline={baseline}"),
        "--candidate",
        &format!("rlm={rlm}"),
        "--output-json",
        &json_out,
        "--output-md",
        &md_out,
        "--output-svg",
        &svg_out,
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let markdown = std::fs::read_to_string(&md_out).expect("markdown written");
    assert_eq!(text(&output.stdout), markdown);
    assert!(markdown.contains("| run_baseline | run | 100.0 | 100.0 (+0.0 %) | 50.0 (-50.0 %) |"));
    let matrix: Value =
        serde_json::from_str(&std::fs::read_to_string(&json_out).expect("json written"))
            .expect("JSON");
    assert_eq!(matrix["rows"][0]["cells"][1]["change"]["p99_pct"], 100.0);
    let chart = std::fs::read_to_string(&svg_out).expect("chart written");
    assert!(chart.starts_with("<svg") && chart.ends_with("</svg>\n"));

    let output = pecr(&[
        "perf",
        "matrix",
        "--baseline",
        &baseline,
        "--candidate",
        "rlm",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
