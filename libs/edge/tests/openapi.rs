//! The committed OpenAPI document is what the generator writes today.

use std::path::PathBuf;
use std::process::Command;

use pecr_proto::service_names::{CONTROLLER, GATEWAY};
use yaml_serde::Value;

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

/// The document parsed back, so the checks below hold whatever the YAML
/// library's formatting.
fn parsed() -> Value {
    yaml_serde::from_str(&generated()).expect("the document is YAML")
}

fn at<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |value, key| &value[*key])
}

fn schema<'a>(document: &'a Value, name: &str) -> &'a Value {
    at(document, &["components", "schemas", name])
}

fn property<'a>(document: &'a Value, message: &str, field: &str) -> &'a Value {
    at(schema(document, message), &["properties", field])
}

fn parameter<'a>(document: &'a Value, path: &str, verb: &str, name: &str) -> &'a Value {
    at(document, &["paths", path, verb, "parameters"])
        .as_sequence()
        .and_then(|parameters| parameters.iter().find(|p| p["name"] == *name))
        .unwrap_or_else(|| panic!("no parameter {name} on {verb} {path}"))
}

fn strings(values: &[&str]) -> Value {
    Value::Sequence(values.iter().map(|v| Value::from(*v)).collect())
}

#[test]
fn the_document_describes_the_contract() {
    let document = parsed();
    assert_eq!(document["openapi"], "3.0.3");

    // Every route with its method, each answering errors as ErrorResponse.
    let routes = [
        ("/v1/sessions", "post"),
        ("/v1/policies/simulate", "post"),
        ("/v1/operators/{op_name}", "post"),
        ("/v1/finalize", "post"),
        ("/v1/run", "post"),
        ("/v1/replays", "get"),
        ("/v1/replays/{run_id}", "get"),
        ("/v1/replays/verify", "post"),
        ("/v1/evaluations", "post"),
        ("/v1/evaluations/scorecards", "get"),
        ("/v1/evaluations/{evaluation_id}", "get"),
    ];
    let error_ref = "#/components/schemas/ErrorResponse";
    for (path, verb) in routes {
        let operation = at(&document, &["paths", path, verb]);
        assert!(operation.is_mapping(), "missing {verb} {path}");
        let default = at(operation, &["responses", "default"]);
        assert_eq!(
            at(default, &["content", "application/json", "schema", "$ref"]),
            error_ref,
            "{verb} {path}"
        );
    }
    assert!(schema(&document, "ErrorResponse").is_mapping());

    // Path and query parameters.
    let op_name = parameter(&document, "/v1/operators/{op_name}", "post", "op_name");
    assert_eq!(op_name["in"], "path");
    assert_eq!(op_name["required"], true);
    for path in ["/v1/replays", "/v1/evaluations/scorecards"] {
        let limit = parameter(&document, path, "get", "limit");
        assert_eq!(limit["in"], "query");
        assert_eq!(limit["required"], false);
    }

    // response_body / body selections.
    assert_eq!(
        at(
            &document,
            &[
                "paths",
                "/v1/replays/{run_id}",
                "get",
                "responses",
                "200",
                "content",
                "application/json",
                "schema",
                "$ref"
            ]
        ),
        "#/components/schemas/ReplayBundle"
    );
    assert_eq!(
        at(
            &document,
            &[
                "paths",
                "/v1/evaluations",
                "post",
                "requestBody",
                "content",
                "application/json",
                "schema",
                "$ref"
            ]
        ),
        "#/components/schemas/ReplayEvaluationSubmission"
    );

    // Enums as strings with their names, without the zero value; input
    // also takes their numbers.
    let terminal_mode = &schema(&document, "TerminalMode")["oneOf"];
    assert_eq!(terminal_mode[0]["type"], "string");
    assert_eq!(
        terminal_mode[0]["enum"],
        strings(&[
            "SUPPORTED",
            "INSUFFICIENT_EVIDENCE",
            "INSUFFICIENT_PERMISSION",
            "SOURCE_UNAVAILABLE"
        ])
    );
    assert_eq!(terminal_mode[1]["type"], "integer");
    let numbers: Value = yaml_serde::from_str("[1, 2, 3, 4]").expect("YAML");
    assert_eq!(terminal_mode[1]["enum"], numbers);
    assert!(schema(&document, "ClaimStatus").is_mapping());

    // 64-bit integers: numbers, or on input decimal strings; the bounds
    // constrain the number. Free-form JSON text, in declaration order.
    let max_bytes = property(&document, "Budget", "max_bytes");
    assert_eq!(max_bytes["description"], "0..=67108864 (64 MiB).");
    assert_eq!(max_bytes["oneOf"][0]["type"], "integer");
    assert_eq!(max_bytes["oneOf"][0]["format"], "int64");
    assert_eq!(max_bytes["oneOf"][1]["type"], "string");
    assert_eq!(max_bytes["oneOf"][1]["pattern"], "^(0|[1-9][0-9]*)$");
    assert_eq!(max_bytes["minimum"], 0);
    assert_eq!(max_bytes["maximum"], 67_108_864);
    let since = property(&document, "VerifyReplaysRequest", "since_unix_ms");
    assert_eq!(since["oneOf"][0]["nullable"], true);
    assert_eq!(since["maximum"], 253_402_300_799_999_u64);
    let result = property(&document, "CallOperatorResponse", "result");
    let described: Value =
        yaml_serde::from_str("description: The operator's JSON result.").expect("YAML");
    assert_eq!(*result, described);
    let names: Vec<&str> = at(schema(&document, "CallOperatorResponse"), &["properties"])
        .as_mapping()
        .map(|properties| properties.keys().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let after_result = names.iter().skip_while(|name| **name != "result").nth(1);
    assert_eq!(after_result, Some(&"policy_decision"));

    // field_rules: bounds, enums, patterns; null only where optional.
    let parallelism = property(&document, "Budget", "max_parallelism");
    assert_eq!(parallelism["minimum"], 1);
    assert_eq!(parallelism["maximum"], 256);
    assert_eq!(parallelism["nullable"], true);
    let engine = parameter(
        &document,
        "/v1/evaluations/scorecards",
        "get",
        "engine_mode",
    );
    assert_eq!(engine["schema"]["enum"], strings(&["baseline", "rlm"]));
    let engine = property(&document, "ReplayEvaluationSubmission", "engine_mode");
    let mut with_null = strings(&["baseline", "rlm"]);
    if let Value::Sequence(values) = &mut with_null {
        values.push(Value::Null);
    }
    assert_eq!(engine["enum"], with_null);
    assert_eq!(engine["nullable"], true);
    let session_id = property(&document, "CallOperatorsRequest", "session_id");
    assert_eq!(session_id["pattern"], "^[A-Za-z0-9._-]+$");
    assert_eq!(session_id["minLength"], 1);
    assert_eq!(session_id["maxLength"], 128);
    assert_eq!(
        property(&document, "Claim", "claim_text")["pattern"],
        r"^[^\u0000]*$"
    );
    assert_eq!(
        property(&document, "ReplayEvaluationSubmission", "replay_ids")["maxItems"],
        1000
    );
    let budget = property(&document, "RunRequest", "budget");
    assert_eq!(budget["description"], "Absent means PECR_BUDGET_DEFAULTS.");
    let budget_ref: Value =
        yaml_serde::from_str("[$ref: '#/components/schemas/Budget']").expect("YAML");
    assert_eq!(budget["allOf"], budget_ref);
    assert_eq!(budget["nullable"], true);

    let text = generated();
    assert!(!text.contains("UNSPECIFIED"));
    assert!(!text.contains("LedgerService"));
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

/// Every `ERR_*` code of the error table, read from its source so a new
/// code cannot be missed.
fn error_codes() -> Vec<pecr_errors::ErrorCode> {
    let table = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../errors/src/code.rs"),
    )
    .expect("the error table");
    let codes: Vec<_> = table
        .split('"')
        .filter(|text| text.starts_with("ERR_"))
        .filter_map(pecr_errors::ErrorCode::parse)
        .collect();
    assert!(codes.len() >= 20, "the table's codes were read");
    codes
}

#[test]
fn every_error_status_is_listed_with_the_error_response() {
    let document = parsed();
    for code in error_codes() {
        let status = code.defaults().http_status;
        assert!(
            pecr_edge_json::ERROR_STATUSES.contains(&status),
            "{} has HTTP {status}, which the document does not list",
            code.as_str()
        );
    }
    let responses = at(&document, &["paths", "/v1/run", "post", "responses"]);
    for status in pecr_edge_json::ERROR_STATUSES {
        let response = &responses[status.to_string().as_str()];
        assert_eq!(
            at(response, &["content", "application/json", "schema", "$ref"]),
            "#/components/schemas/ErrorResponse",
            "{status}"
        );
    }
}

#[test]
fn the_document_names_servers_security_and_pecr_headers() {
    let document = parsed();
    assert_eq!(document["servers"][0]["url"], "/");
    let schemes = at(&document, &["components", "securitySchemes"]);
    assert_eq!(schemes["oidcBearer"]["scheme"], "bearer");
    assert_eq!(schemes["localPrincipal"]["name"], "x-pecr-principal-id");
    assert_eq!(schemes["localPrincipal"]["in"], "header");
    assert_eq!(schemes["localSecret"]["name"], "x-pecr-local-auth-secret");
    let security = document["security"].as_sequence().expect("security");
    assert_eq!(security.len(), 3);

    for (path, verb) in [
        ("/v1/run", "post"),
        ("/v1/replays", "get"),
        ("/v1/sessions", "post"),
    ] {
        for name in [
            "x-pecr-principal-id",
            "x-pecr-local-auth-secret",
            "x-pecr-request-id",
            "x-pecr-trace-id",
        ] {
            let header = parameter(&document, path, verb, name);
            assert_eq!(header["in"], "header");
            assert_eq!(header["required"], false);
        }
    }
    let token = parameter(&document, "/v1/finalize", "post", "x-pecr-session-token");
    assert_eq!(token["required"], true);
    let sessions = at(
        &document,
        &[
            "paths",
            "/v1/sessions",
            "post",
            "responses",
            "200",
            "headers",
        ],
    );
    assert!(sessions["x-pecr-session-token"].is_mapping());
    let run = at(
        &document,
        &["paths", "/v1/run", "post", "responses", "200", "headers"],
    );
    assert!(run.get("x-pecr-session-token").is_none());
}

#[test]
fn the_json_document_is_the_yaml_document() {
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let json = pecr_edge::openapi_json(&pool, &[GATEWAY, CONTROLLER]).expect("JSON");
    let from_json: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let from_yaml: serde_json::Value = yaml_serde::from_str(&generated()).expect("YAML");
    assert_eq!(from_json, from_yaml);
}
