//! The committed OpenAPI document is what the generator writes today.

use std::path::PathBuf;
use std::process::Command;

use pecr_proto::service_names::{CONTROLLER, GATEWAY};

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi/pecr.v1.yaml")
}

fn generated() -> String {
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    pecr_edge::openapi_document(&pool, &[GATEWAY, CONTROLLER]).expect("document")
}

#[test]
fn committed_openapi_document_is_up_to_date() {
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == generated(),
        "docs/openapi/pecr.v1.yaml is stale; run `cargo run -p pecr-edge --bin pecr-openapi`"
    );
}

#[test]
fn generation_is_deterministic_and_order_independent() {
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let reversed = pecr_edge::openapi_document(&pool, &[CONTROLLER, GATEWAY]).expect("document");
    assert_eq!(generated(), reversed);
}

#[test]
fn the_document_describes_the_contract() {
    let document = generated();
    for needle in [
        "openapi: \"3.0.3\"",
        // Every route with its method.
        "  \"/v1/sessions\":\n    post:\n",
        "  \"/v1/policies/simulate\":\n    post:\n",
        "  \"/v1/operators/{op_name}\":\n    post:\n",
        "  \"/v1/finalize\":\n    post:\n",
        "  \"/v1/run\":\n    post:\n",
        "  \"/v1/replays\":\n    get:\n",
        "  \"/v1/replays/{run_id}\":\n    get:\n",
        "  \"/v1/evaluations\":\n    post:\n",
        "  \"/v1/evaluations/scorecards\":\n    get:\n",
        "  \"/v1/evaluations/{evaluation_id}\":\n    get:\n",
        // Path and query parameters.
        "        - name: \"op_name\"\n          in: \"path\"\n          required: true\n",
        "        - name: \"limit\"\n          in: \"query\"\n          required: false\n",
        // response_body / body selections.
        "                $ref: \"#/components/schemas/ReplayBundle\"\n",
        "              $ref: \"#/components/schemas/ReplayEvaluationSubmission\"\n",
        // Enums as strings with their names, without the zero value.
        "    TerminalMode:\n      type: \"string\"\n",
        "        - \"SUPPORTED\"\n        - \"INSUFFICIENT_EVIDENCE\"\n        - \"INSUFFICIENT_PERMISSION\"\n        - \"SOURCE_UNAVAILABLE\"\n",
        "    ClaimStatus:\n",
        // 64-bit integers; free-form JSON text.
        "        max_bytes:\n          description: \"0..=67108864 (64 MiB).\"\n          type: \"integer\"\n          format: \"int64\"\n",
        "        result:\n          description: \"The operator's JSON result.\"\n        policy_decision:\n",
        // field_rules: bounds, enums, patterns; null only where optional.
        "          maximum: 67108864\n",
        "          minimum: 1\n          maximum: 256\n          nullable: true\n",
        "            enum:\n              - \"baseline\"\n              - \"rlm\"\n",
        "            - \"rlm\"\n            - null\n          nullable: true\n",
        "          pattern: \"^[A-Za-z0-9._-]+$\"\n          minLength: 1\n          maxLength: 128\n",
        "          pattern: \"^[^\\\\u0000]*$\"\n",
        "          maxItems: 1000\n",
        "          description: \"Absent means PECR_BUDGET_DEFAULTS.\"\n          allOf:\n            - $ref: \"#/components/schemas/Budget\"\n          nullable: true\n",
        // Errors.
        "                $ref: \"#/components/schemas/ErrorResponse\"\n",
        "    ErrorResponse:\n",
    ] {
        assert!(document.contains(needle), "missing:\n{needle}");
    }
    assert!(!document.contains("UNSPECIFIED"));
    assert!(!document.contains("LedgerService"));
}

#[test]
fn the_binary_checks_staleness() {
    let binary = env!("CARGO_BIN_EXE_pecr-openapi");
    let status = Command::new(binary)
        .arg("--check")
        .status()
        .expect("run pecr-openapi");
    assert_eq!(status.code(), Some(0), "committed document is current");

    let dir = std::env::temp_dir().join(format!("pecr-openapi-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let stale = dir.join("stale.yaml");
    std::fs::write(&stale, "openapi: \"3.0.3\"\n").expect("write stale file");
    let status = Command::new(binary)
        .args(["--check", "--out"])
        .arg(&stale)
        .status()
        .expect("run pecr-openapi");
    assert_eq!(status.code(), Some(1), "stale file is reported");
    let missing = dir.join("missing.yaml");
    let status = Command::new(binary)
        .args(["--check", "--out"])
        .arg(&missing)
        .status()
        .expect("run pecr-openapi");
    assert_eq!(status.code(), Some(1), "missing file is reported");

    let fresh = dir.join("fresh.yaml");
    let status = Command::new(binary)
        .args(["--out"])
        .arg(&fresh)
        .status()
        .expect("run pecr-openapi");
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        std::fs::read_to_string(&fresh).expect("written"),
        generated()
    );
    let _ = std::fs::remove_dir_all(&dir);
}
