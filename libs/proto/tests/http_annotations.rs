//! The REST mapping is part of the contract: every RPC with a documented
//! endpoint carries exactly the spec's method and path, and the ledger stays
//! internal (no mapping).

use prost_reflect::{DescriptorPool, Value};

fn pool() -> DescriptorPool {
    DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

/// (method, path, body, response_body) of an RPC's google.api.http option.
fn http_rule(
    pool: &DescriptorPool,
    service: &str,
    rpc: &str,
) -> Option<(String, String, String, String)> {
    let extension = pool
        .get_extension_by_name("google.api.http")
        .expect("google.api.http is known");
    let method = pool
        .get_service_by_name(service)
        .unwrap_or_else(|| panic!("{service} exists"))
        .methods()
        .find(|m| m.name() == rpc)
        .unwrap_or_else(|| panic!("{service}/{rpc} exists"));
    let options = method.options();
    if !options.has_extension(&extension) {
        return None;
    }
    let rule = options.get_extension(&extension);
    let rule = rule.as_message().expect("HttpRule message");
    let text = |field: &str| match rule.get_field_by_name(field).as_deref() {
        Some(Value::String(value)) => value.clone(),
        _ => String::new(),
    };
    let (verb, path) = ["get", "put", "post", "delete", "patch"]
        .into_iter()
        .map(|verb| (verb, text(verb)))
        .find(|(_, path)| !path.is_empty())
        .expect("a pattern is set");
    Some((
        verb.to_uppercase(),
        path,
        text("body"),
        text("response_body"),
    ))
}

#[test]
fn gateway_and_controller_rpcs_map_to_the_spec_endpoints() {
    let pool = pool();
    let expected = [
        (
            "pecr.v1.GatewayService",
            "CreateSession",
            "POST",
            "/v1/sessions",
            "*",
            "",
        ),
        (
            "pecr.v1.GatewayService",
            "SimulatePolicy",
            "POST",
            "/v1/policies/simulate",
            "*",
            "",
        ),
        (
            "pecr.v1.GatewayService",
            "CallOperator",
            "POST",
            "/v1/operators/{op_name}",
            "*",
            "",
        ),
        (
            "pecr.v1.GatewayService",
            "CallOperators",
            "POST",
            "/v1/operator-batches",
            "*",
            "",
        ),
        (
            "pecr.v1.GatewayService",
            "Finalize",
            "POST",
            "/v1/finalize",
            "*",
            "",
        ),
        (
            "pecr.v1.ControllerService",
            "Run",
            "POST",
            "/v1/run",
            "*",
            "",
        ),
        (
            "pecr.v1.ControllerService",
            "RunStream",
            "POST",
            "/v1/run/stream",
            "*",
            "",
        ),
        (
            "pecr.v1.ControllerService",
            "ListReplays",
            "GET",
            "/v1/replays",
            "",
            "",
        ),
        (
            "pecr.v1.ControllerService",
            "GetReplay",
            "GET",
            "/v1/replays/{run_id}",
            "",
            "bundle",
        ),
        (
            "pecr.v1.ControllerService",
            "VerifyReplays",
            "POST",
            "/v1/replays/verify",
            "*",
            "",
        ),
        (
            "pecr.v1.ControllerService",
            "SubmitEvaluation",
            "POST",
            "/v1/evaluations",
            "submission",
            "evaluation",
        ),
        (
            "pecr.v1.ControllerService",
            "GetScorecards",
            "GET",
            "/v1/evaluations/scorecards",
            "",
            "",
        ),
        (
            "pecr.v1.ControllerService",
            "GetEvaluation",
            "GET",
            "/v1/evaluations/{evaluation_id}",
            "",
            "evaluation",
        ),
    ];
    for (service, rpc, verb, path, body, response_body) in expected {
        let rule = http_rule(&pool, service, rpc);
        assert_eq!(
            rule,
            Some((verb.into(), path.into(), body.into(), response_body.into())),
            "{service}/{rpc}"
        );
    }
    for service in ["pecr.v1.GatewayService", "pecr.v1.ControllerService"] {
        let count = pool
            .get_service_by_name(service)
            .map(|s| s.methods().count());
        assert_eq!(
            count,
            Some(expected.iter().filter(|e| e.0 == service).count()),
            "{service} has no unmapped RPC"
        );
    }
}

#[test]
fn the_ledger_is_internal() {
    let pool = pool();
    let ledger = pool
        .get_service_by_name("pecr.v1.LedgerService")
        .expect("ledger service");
    for method in ledger.methods() {
        assert_eq!(
            http_rule(&pool, "pecr.v1.LedgerService", method.name()),
            None,
            "{}",
            method.name()
        );
    }
}

#[test]
fn free_form_json_fields_are_marked_json_text() {
    let pool = pool();
    let option = pool
        .get_extension_by_name("pecr.v1.json_text")
        .expect("json_text option");
    let marked = |message: &str, field: &str| {
        let field = pool
            .get_message_by_name(message)
            .and_then(|m| m.get_field_by_name(field))
            .unwrap_or_else(|| panic!("{message}.{field}"));
        field.options().get_extension(&option).as_bool() == Some(true)
    };
    for (message, field) in [
        ("pecr.v1.EvidenceUnit", "span_or_row_spec"),
        ("pecr.v1.EvidenceUnit", "content"),
        ("pecr.v1.TransformStep", "params"),
        ("pecr.v1.TraceEvent", "payload"),
        ("pecr.v1.PolicyDecision", "redaction"),
        ("pecr.v1.ErrorResponse", "detail"),
        ("pecr.v1.CallOperatorRequest", "params"),
        ("pecr.v1.CallOperatorResponse", "result"),
        ("pecr.v1.SimulatePolicyRequest", "params"),
        ("pecr.v1.NewLedgerEvent", "payload"),
    ] {
        assert!(
            marked(message, field),
            "{message}.{field} carries JSON text"
        );
    }
    assert!(!marked("pecr.v1.EvidenceUnit", "object_id"));
}
