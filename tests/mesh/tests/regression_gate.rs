//! The replay regression gate (`pecr replays gate`) on the live mesh: the
//! committed expectation set passes for every principal it names, after
//! asking its questions; an expectation the runs do not meet fails with
//! the difference named, and so does a question nobody asked.

use std::path::Path;
use std::process::Output;

use pecr_mesh_tests::{Mesh, pecr, printed};
use pecr_testkit::workspace_root;

async fn gate(mesh: &Mesh, principal: &str, expect: &Path, extra: &[&str]) -> Output {
    let expect = expect.to_str().expect("UTF-8 path");
    let mut args = vec![
        "--principal",
        principal,
        "replays",
        "gate",
        "--expect",
        expect,
    ];
    args.extend_from_slice(extra);
    pecr(mesh, &args).await
}

#[tokio::test]
async fn the_committed_expectations_hold_and_a_regression_fails_the_gate() {
    let mesh = Mesh::start().await;
    let committed = workspace_root().join("fixtures/regression/expectations.json");
    for principal in ["dev", "support", "guest"] {
        let output = gate(&mesh, principal, &committed, &["--ask"]).await;
        assert!(output.status.success(), "{principal}: {}", printed(&output));
        assert!(
            printed(&output).contains(", 0 regressions"),
            "{}",
            printed(&output)
        );
    }

    // The same runs against expectations they do not meet.
    let scratch = workspace_root().join("target/tmp/regression-gate");
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let changed = scratch.join("changed.json");
    let set = serde_json::json!({"expectations": [
        {
            "principal": "dev",
            "question": "What is the customer status and plan tier?",
            "terminal_mode": "INSUFFICIENT_EVIDENCE",
            "cited_sources": [{"source_system": "fs_corpus", "object_id": "public/other.md"}],
            "claim_statuses": ["SUPPORTED"]
        },
        {
            "principal": "dev",
            "question": "a question nobody asked",
            "terminal_mode": "SUPPORTED",
            "claim_statuses": []
        }
    ]});
    std::fs::write(&changed, set.to_string()).expect("write");
    let output = gate(&mesh, "dev", &changed, &[]).await;
    assert_eq!(output.status.code(), Some(1), "{}", printed(&output));
    let report = printed(&output);
    for expected in [
        "gate: 2 questions for dev, 2 regressions",
        "terminal mode: expected INSUFFICIENT_EVIDENCE, got SUPPORTED",
        "cited sources: fs_corpus public/other.md no longer cited",
        "cited sources: pg_safeview safe_customer_view_public:local:cust_public_1 cited, not expected",
        "no stored run of this question",
    ] {
        assert!(
            report.contains(expected),
            "{expected:?} missing from\n{report}"
        );
    }

    // --json: the same verdict, machine-readable.
    let output = gate(&mesh, "dev", &changed, &["--json"]).await;
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", printed(&output)));
    assert_eq!(report["regressions"], 2);

    // A principal the set does not name is a usage error, not a pass.
    let output = gate(&mesh, "nobody", &committed, &[]).await;
    assert_eq!(output.status.code(), Some(2), "{}", printed(&output));
}
