//! `pecr contract-test` against the live gateway: every check passes for a
//! principal the policy allows every operator (`dev`); for one it does not
//! (`support` may not call `redact`), the report names the failing check
//! and the command exits 1.

use std::process::Output;

use pecr_mesh_tests::{Mesh, assert_no_canary, pecr, printed};

async fn contract_test(mesh: &Mesh, principal: &str, extra: &[&str]) -> Output {
    let gateway = mesh.gateway.as_ref().expect("gateway running").grpc_url();
    let mut args = vec!["--principal", principal];
    args.extend_from_slice(extra);
    args.extend(["contract-test", "--gateway", &gateway]);
    pecr(mesh, &args).await
}

#[tokio::test]
async fn every_operator_meets_the_contract_for_a_principal_allowed_them_all() {
    let mesh = Mesh::start().await;
    let output = contract_test(&mesh, "dev", &[]).await;
    let report = printed(&output);
    assert!(output.status.success(), "{report}");
    assert!(report.contains(", 0 failed"), "{report}");
    for operator in [
        "search",
        "fetch_span",
        "list_versions",
        "diff",
        "fetch_rows",
        "aggregate",
        "redact",
        "finalize",
    ] {
        assert!(
            report.contains(&format!("✓ {operator}:")),
            "{operator} not checked:\n{report}"
        );
    }
    assert_no_canary("contract-test report", &report);

    let output = contract_test(&mesh, "dev", &["--json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|err| panic!("{err}: {}", printed(&output)));
    assert_eq!(json["failed"], 0);
    assert!(json["passed"].as_u64().unwrap_or(0) >= 14, "{json}");
}

#[tokio::test]
async fn a_refused_operator_fails_its_check_by_name() {
    let mesh = Mesh::start().await;
    let output = contract_test(&mesh, "support", &[]).await;
    let report = printed(&output);
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(report.contains("✗ redact:"), "{report}");
    assert!(report.contains("ERR_POLICY_DENIED"), "{report}");
    assert!(report.contains("✓ fetch_rows:"), "{report}");
}
