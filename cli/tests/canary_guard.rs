//! `pecr canary guard` as an operator runs it: a Suite 7 summary and the
//! committed SLO gates in, the decision out as JSON, Markdown and an env
//! file, exit 0 on pass and 1 on a fallback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn scenario(name: &str, engine: Option<&str>, p95: f64, error_rate: f64) -> Value {
    json!({
        "name": name, "kind": if engine.is_some() { "run" } else { "fault" }, "engine": engine,
        "requests": 1000, "duration_s": 10.0, "throughput_per_s": 100.0,
        "latency_ms": {"p50": p95 / 2.0, "p95": p95, "p99": p95 * 1.2},
        "error_rate": error_rate,
        "terminal_modes": {"SUPPORTED": 1000},
        "cpu_ms_per_request": 3.5
    })
}

fn summary(dir: &Path, rlm_p95: f64) -> PathBuf {
    let path = dir.join("summary.json");
    let mut gateway = scenario("gateway_fetch_rows", None, 20.0, 0.0);
    gateway["kind"] = json!("operator");
    gateway["terminal_modes"] = json!({});
    let value = json!({
        "schema": "pecr.suite7.v1", "mode": "short", "commit": "0123abcd",
        "measured_at": "2026-12-06T12:00:00Z", "machine": {"cores": "2"},
        "scenarios": [
            scenario("run_baseline", Some("baseline"), 40.0, 0.0),
            scenario("run_rlm", Some("rlm"), rlm_p95, 0.0),
            gateway,
            scenario("fault_ledger_restart", None, 900.0, 0.01),
        ]
    });
    std::fs::write(&path, value.to_string()).expect("write summary");
    path
}

fn guard(dir: &Path, summary: &Path, extra: &[&str]) -> Output {
    let gates = Path::new(env!("CARGO_MANIFEST_DIR")).join("../perf/gates/canary.json");
    Command::new(env!("CARGO_BIN_EXE_pecr"))
        .args(["canary", "guard", "--engine", "rlm", "--summary"])
        .arg(summary)
        .arg("--gates")
        .arg(gates)
        .arg("--output-json")
        .arg(dir.join("guard.json"))
        .arg("--output-md")
        .arg(dir.join("guard.md"))
        .arg("--output-env")
        .arg(dir.join("fallback.env"))
        .args(extra)
        .output()
        .expect("run pecr")
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

#[test]
fn a_canary_within_its_gates_passes_unchanged() {
    let dir = scratch("canary-pass");
    let output = guard(&dir, &summary(&dir, 300.0), &[]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "canary guard: pass\n"
    );
    let decision: Value = serde_json::from_str(&read(&dir, "guard.json")).expect("JSON");
    assert_eq!(decision["action"], "pass");
    let env = read(&dir, "fallback.env");
    assert!(env.contains("PECR_CONTROLLER_ENGINE=rlm\n"), "{env}");
    assert!(
        env.contains("PECR_CONTROLLER_ADAPTIVE_PARALLELISM_ENABLED=1\n"),
        "{env}"
    );
    assert!(read(&dir, "guard.md").contains("Every gate held."));
}

#[test]
fn a_slow_canary_falls_back_one_step_at_a_time() {
    let dir = scratch("canary-fallback");
    let slow = summary(&dir, 5000.0);
    let output = guard(&dir, &slow, &[]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("canary guard: disable_adaptive_parallelism\n"),
        "{text}"
    );
    assert!(text.contains("run_rlm: p95_ms 5000.000 > 2000"), "{text}");
    assert!(
        read(&dir, "fallback.env").contains("PECR_CONTROLLER_ADAPTIVE_PARALLELISM_ENABLED=0\n")
    );

    let output = guard(
        &dir,
        &slow,
        &["--adaptive-enabled", "false", "--batch-enabled", "false"],
    );
    assert_eq!(output.status.code(), Some(1));
    let decision: Value = serde_json::from_str(&read(&dir, "guard.json")).expect("JSON");
    assert_eq!(decision["action"], "switch_engine_to_baseline");
    assert_eq!(decision["next"]["engine"], "baseline");
    assert!(read(&dir, "fallback.env").contains("PECR_CONTROLLER_ENGINE=baseline\n"));
}

#[test]
fn a_summary_of_another_schema_is_a_usage_error() {
    let dir = scratch("canary-schema");
    let path = dir.join("old.json");
    std::fs::write(
        &path,
        r#"{"schema":"k6-summary","mode":"x","commit":"c","measured_at":"t","scenarios":[]}"#,
    )
    .expect("write");
    let output = guard(&dir, &path, &[]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("pecr.suite7.v1"));
    assert!(
        !dir.join("fallback.env").exists(),
        "nothing is written for a refused input"
    );
}
