//! The usefulness set (`fixtures/usefulness/questions.json`) through
//! `pecr eval usefulness` against a fresh mesh: the baseline engine keeps at
//! least the score recorded in README.md ("Usefulness"), and no answer
//! carries a canary.

use pecr_mesh_tests::{Mesh, MeshOptions, assert_no_canary, pecr};
use serde_json::Value;

/// The baseline's recorded score (README.md, "Usefulness"): lower it only
/// with a reason in docs/decisions.md.
const FLOOR: &str = "95.56";

/// Every rate limit off: the set asks each principal dozens of questions.
fn without_rate_limits() -> MeshOptions {
    let off = |name: &'static str| (name, "0".to_owned());
    MeshOptions {
        gateway: vec![
            off("PECR_RATE_LIMIT_SESSIONS_PER_WINDOW"),
            off("PECR_RATE_LIMIT_OPERATORS_PER_WINDOW"),
            off("PECR_RATE_LIMIT_FINALIZE_PER_WINDOW"),
        ],
        controller: vec![off("PECR_RATE_LIMIT_RUN_PER_WINDOW")],
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn the_baseline_keeps_its_usefulness_score() {
    let mut mesh = Mesh::start_with(without_rate_limits()).await;
    let output = pecr(
        &mesh,
        &["--json", "eval", "usefulness", "--min-score", FLOOR],
    )
    .await;
    let stdout = text(&output.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("{err}: {stdout}{}", text(&output.stderr)));
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&report).unwrap_or_default()
    );
    assert!(
        output.status.success(),
        "score {} is below the floor {FLOOR}",
        report["score"]
    );
    assert_eq!(report["leaks"], 0);
    assert!(report["questions"].as_u64() >= Some(30), "{report}");
    assert_eq!(
        report["principals"],
        serde_json::json!(["dev", "guest", "support"])
    );
    assert_no_canary("pecr eval usefulness", &stdout);
    assert_no_canary("logs", &mesh.logs().join("\n"));
}

/// `--min-score` decides the exit code; `--principal` asks one principal;
/// `--set` reads another set.
#[tokio::test]
async fn the_exit_code_follows_the_floor() {
    let mesh = Mesh::start_with(without_rate_limits()).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let set = dir.path().join("set.json");
    std::fs::write(
        &set,
        r#"{"name":"two","questions":[
            {"id":"right","intent":"smoke","category":"not_answerable","question":"smoke",
             "expect":{"dev":{"mode":"INSUFFICIENT_EVIDENCE"},"guest":{"mode":"INSUFFICIENT_PERMISSION"}}},
            {"id":"wrong","intent":"smoke","category":"not_answerable","question":"smoke",
             "expect":{"dev":{"mode":"SUPPORTED"}}}]}"#,
    )
    .expect("write set");
    let set = set.display().to_string();
    let run = |extra: &'static [&'static str]| {
        let mut args = vec!["--json", "eval", "usefulness", "--set", &set];
        args.extend_from_slice(extra);
        let mesh = &mesh;
        async move {
            let output = pecr(mesh, &args).await;
            let report: Value = serde_json::from_slice(&output.stdout)
                .unwrap_or_else(|err| panic!("{err}: {}", text(&output.stderr)));
            (output.status.code(), report)
        }
    };
    let (code, report) = run(&[]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(
        (report["answers"].as_u64(), report["right"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(report["misses"][0]["id"], "wrong");
    // 2 of 3 is printed as 66.67, and that is the figure compared.
    assert_eq!(run(&["--min-score", "66.67"]).await.0, Some(0));
    assert_eq!(run(&["--min-score", "66.68"]).await.0, Some(1));
    let (code, report) = run(&["--principal", "guest", "--min-score", "100"]).await;
    assert_eq!(code, Some(0), "{report}");
    assert_eq!(report["principals"], serde_json::json!(["guest"]));

    let bad = pecr(
        &mesh,
        &["eval", "usefulness", "--set", "/nonexistent/set.json"],
    )
    .await;
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("--set /nonexistent/set.json"));
}
