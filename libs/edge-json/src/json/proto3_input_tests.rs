//! Input accepts the proto3 JSON mapping (both member names, 64-bit
//! integers as strings, enum numbers), and every refusal names the member.

use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, Value};

use super::{DecodeError, JsonMapping, parse_body};
use crate::OPEN_MESSAGES;

fn decode(name: &str, json: &str) -> Result<DynamicMessage, DecodeError> {
    let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("pool");
    let mapping = JsonMapping::new(&pool, OPEN_MESSAGES);
    let descriptor = pool.get_message_by_name(name).expect("message");
    let raw = parse_body(json.as_bytes())?;
    mapping.decode_message(&descriptor, raw, &[])
}

/// The refusal as (field, reason), for comparing with a table.
fn refusal(result: Result<DynamicMessage, DecodeError>) -> Option<(Option<String>, String)> {
    result.err().map(|err| (err.field, err.reason))
}

fn budget_with(member: &str) -> String {
    format!(
        r#"{{"query":"q","budget":{{"max_operator_calls":1,"max_wallclock_ms":1,"max_recursion_depth":1,{member}}}}}"#
    )
}

fn claim_map_with(claims: &str) -> String {
    format!(
        r#"{{"claim_map_id":"c","terminal_mode":"SUPPORTED","claims":{claims},"coverage_threshold":1,"coverage_observed":0}}"#
    )
}

fn claim_with_status(status: &str) -> String {
    claim_map_with(&format!(
        r#"[{{"claim_id":"","claim_text":"t","status":{status},"evidence_unit_ids":[]}}]"#
    ))
}

#[test]
fn camel_case_and_proto_names_decode_alike() {
    let cases = [
        (
            "pecr.v1.RunRequest",
            r#"{"query":"q","budget":{"max_operator_calls":10,"max_bytes":1024,"max_wallclock_ms":1000,"max_recursion_depth":3,"max_parallelism":2}}"#,
            r#"{"query":"q","budget":{"maxOperatorCalls":10,"maxBytes":1024,"maxWallclockMs":1000,"maxRecursionDepth":3,"maxParallelism":2}}"#,
        ),
        (
            "pecr.v1.RunRequest",
            r#"{"query":"q","budget":{"max_operator_calls":10,"max_bytes":1024,"max_wallclock_ms":1000,"max_recursion_depth":3}}"#,
            // Both spellings may be mixed, one per field.
            r#"{"query":"q","budget":{"maxOperatorCalls":10,"max_bytes":1024,"maxWallclockMs":1000,"max_recursion_depth":3}}"#,
        ),
        (
            "pecr.v1.ClaimMap",
            r#"{"claim_map_id":"c","terminal_mode":"SUPPORTED","claims":[{"claim_id":"","claim_text":"t","status":"UNKNOWN","evidence_unit_ids":["e"]}],"coverage_threshold":0.5,"coverage_observed":0}"#,
            r#"{"claimMapId":"c","terminalMode":"SUPPORTED","claims":[{"claimId":"","claimText":"t","status":"UNKNOWN","evidenceUnitIds":["e"]}],"coverageThreshold":0.5,"coverageObserved":0}"#,
        ),
        (
            "pecr.v1.VerifyReplaysRequest",
            r#"{"since_unix_ms":1700000000000,"limit":5,"engine_mode":"rlm"}"#,
            r#"{"sinceUnixMs":"1700000000000","limit":5,"engineMode":"rlm"}"#,
        ),
    ];
    for (name, proto_names, json_names) in cases {
        let expected = decode(name, proto_names)
            .expect(proto_names)
            .encode_to_vec();
        let got = decode(name, json_names).expect(json_names).encode_to_vec();
        assert_eq!(got, expected, "{json_names}");
    }
}

#[test]
fn the_same_field_under_both_names_is_refused_as_protobuf_does() {
    for body in [
        budget_with(r#""max_bytes":1,"maxBytes":1"#),
        budget_with(r#""maxBytes":1,"max_bytes":1"#),
        budget_with(r#""maxBytes":1,"maxBytes":1"#),
    ] {
        let second = if body.ends_with(r#""max_bytes":1}}"#) {
            "max_bytes"
        } else {
            "maxBytes"
        };
        assert_eq!(
            refusal(decode("pecr.v1.RunRequest", &body)),
            Some((
                Some(format!("budget.{second}")),
                "duplicate field".to_owned()
            )),
            "{body}"
        );
    }
}

#[test]
fn sixty_four_bit_integers_are_numbers_or_decimal_strings() {
    let max_bytes = |value: &str| {
        decode(
            "pecr.v1.RunRequest",
            &budget_with(&format!(r#""max_bytes":{value}"#)),
        )
        .map(|message| {
            let budget = message.get_field_by_name("budget").expect("budget");
            let budget = budget.as_message().expect("message").clone();
            budget
                .get_field_by_name("max_bytes")
                .map(|v| v.into_owned())
        })
    };
    let accepted = [
        ("1024", 1024),
        (r#""1024""#, 1024),
        ("0", 0),
        (r#""0""#, 0),
        (r#""18446744073709551615""#, u64::MAX),
    ];
    for (value, expected) in accepted {
        assert_eq!(
            max_bytes(value),
            Ok(Some(Value::U64(expected))),
            "max_bytes {value}"
        );
    }
    let expected_integer = "expected an integer";
    let refused = [
        (r#""18446744073709551616""#, "integer out of range"),
        ("18446744073709551616", "integer out of range"),
        (r#""-1""#, "integer out of range"),
        (r#""1.0""#, expected_integer),
        (r#""1e3""#, expected_integer),
        (r#"" 1""#, expected_integer),
        (r#""01""#, expected_integer),
        (r#""+1""#, expected_integer),
        (r#""0x10""#, expected_integer),
        (r#""""#, expected_integer),
        ("1.0", expected_integer),
        ("1e3", expected_integer),
        (
            "true",
            "expected an integer or a decimal string, found a boolean",
        ),
        (
            "[1]",
            "expected an integer or a decimal string, found an array",
        ),
        ("null", "null for a field that is not optional"),
    ];
    for (value, reason) in refused {
        let error = max_bytes(value).expect_err(value);
        assert_eq!(
            (error.field.as_deref(), error.reason.as_str()),
            (Some("budget.max_bytes"), reason),
            "max_bytes {value}"
        );
    }
    // proto3 JSON writers write 32-bit integers as numbers; a string there
    // stays a type error.
    assert_eq!(
        refusal(decode(
            "pecr.v1.RunRequest",
            r#"{"query":"q","budget":{"max_operator_calls":"1","max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}}"#
        )),
        Some((
            Some("budget.max_operator_calls".to_owned()),
            "expected a number, found a string".to_owned()
        ))
    );
    // An optional 64-bit field, by its JSON name and as a string.
    let request = decode(
        "pecr.v1.VerifyReplaysRequest",
        r#"{"sinceUnixMs":"253402300799999"}"#,
    )
    .expect("request");
    assert_eq!(
        request.get_field_by_name("since_unix_ms").as_deref(),
        Some(&Value::U64(253_402_300_799_999))
    );
}

#[test]
fn enums_are_value_names_or_numbers() {
    let status = |value: &str| {
        decode("pecr.v1.ClaimMap", &claim_with_status(value)).map(|map| {
            let claims = map
                .get_field_by_name("claims")
                .expect("claims")
                .into_owned();
            let Value::List(claims) = claims else {
                return None;
            };
            claims[0]
                .as_message()
                .and_then(|claim| claim.get_field_by_name("status"))
                .map(|v| v.into_owned())
        })
    };
    for (value, number) in [
        (r#""SUPPORTED""#, 1),
        ("1", 1),
        (r#""UNKNOWN""#, 3),
        ("3", 3),
    ] {
        assert_eq!(
            status(value),
            Ok(Some(Value::EnumNumber(number))),
            "{value}"
        );
    }
    let refused = [
        (
            r#""STATUS_UNSPECIFIED""#,
            "the unspecified enum value is not accepted",
        ),
        ("0", "the unspecified enum value is not accepted"),
        ("4", "unknown enum value"),
        ("-1", "unknown enum value"),
        ("2147483648", "unknown enum value"),
        (r#""assumption""#, "unknown enum value"),
        (r#""2""#, "unknown enum value"),
        ("2.0", "expected an integer"),
        ("true", "expected an enum value name or number"),
        ("null", "null for a field that is not optional"),
    ];
    for (value, reason) in refused {
        let error = status(value).expect_err(value);
        assert_eq!(
            (error.field.as_deref(), error.reason.as_str()),
            (Some("claims[0].status"), reason),
            "status {value}"
        );
    }
}

#[test]
fn every_refusal_names_the_member() {
    let full_budget =
        r#""max_operator_calls":1,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1"#;
    let error_response =
        r#"{"code":"E","message":"m","terminal_mode_hint":"SUPPORTED","retryable":false}"#;
    let cases: Vec<(&str, String, Option<&str>, &str)> = vec![
        (
            "pecr.v1.RunRequest",
            format!(r#"{{"query":"q","budget":{{{full_budget},"surprise":1}}}}"#),
            Some("budget.surprise"),
            "unknown field",
        ),
        (
            "pecr.v1.RunRequest",
            format!(r#"{{"query":"q","budget":{{{full_budget},"max_Bytes":1}}}}"#),
            Some("budget.max_Bytes"),
            "unknown field",
        ),
        (
            "pecr.v1.RunRequest",
            r#"{"query":"q","budget":{"maxOperatorCalls":1,"maxBytes":1,"maxWallclockMs":1}}"#
                .to_owned(),
            Some("budget.max_recursion_depth"),
            "missing field",
        ),
        (
            "pecr.v1.RunRequest",
            r#"{"query":7}"#.to_owned(),
            Some("query"),
            "expected a string, found a number",
        ),
        (
            "pecr.v1.RunRequest",
            r#"{"query":"q","budget":[]}"#.to_owned(),
            Some("budget"),
            "expected an object, found an array",
        ),
        (
            "pecr.v1.RunRequest",
            budget_with(r#""maxBytes":-1"#),
            Some("budget.maxBytes"),
            "integer out of range",
        ),
        (
            "pecr.v1.RunRequest",
            r#"{"query":"q","budget":{"max_operator_calls":4294967296,"max_bytes":1,"max_wallclock_ms":1,"max_recursion_depth":1}}"#
                .to_owned(),
            Some("budget.max_operator_calls"),
            "integer out of range",
        ),
        (
            "pecr.v1.RunRequest",
            budget_with(r#""max_bytes":1,"maxParallelism":1.5"#),
            Some("budget.maxParallelism"),
            "expected an integer",
        ),
        (
            "pecr.v1.ClaimMap",
            claim_map_with(
                r#"[{"claim_id":"","claim_text":"t","status":"UNKNOWN","evidence_unit_ids":[]},{"claimId":"","claimText":"t","status":"UNKNOWN","evidenceUnitIds":["e",7]}]"#,
            ),
            Some("claims[1].evidenceUnitIds[1]"),
            "expected a string, found a number",
        ),
        (
            "pecr.v1.ClaimMap",
            claim_map_with("{}"),
            Some("claims"),
            "expected an array, found an object",
        ),
        (
            "pecr.v1.ClaimMap",
            r#"{"claim_map_id":"c","terminal_mode":"SUPPORTED","claims":[],"coverage_threshold":"1","coverage_observed":0}"#
                .to_owned(),
            Some("coverage_threshold"),
            "expected a number, found a string",
        ),
        (
            "pecr.v1.OperatorOutcome",
            format!(
                r#"{{"ok":{{"terminal_mode":"SUPPORTED","result":{{}},"policyDecision":{{"allow":true,"cacheable":false}}}},"error":{{"error":{error_response},"httpStatus":400}}}}"#
            ),
            Some("error"),
            "more than one member of a oneof",
        ),
        (
            "pecr.v1.RunRequest",
            "[]".to_owned(),
            None,
            "expected an object, found an array",
        ),
    ];
    for (name, body, field, reason) in cases {
        assert_eq!(
            refusal(decode(name, &body)),
            Some((field.map(str::to_owned), reason.to_owned())),
            "{body}"
        );
    }
    // Not JSON at all: no member to name, the syntax error's position.
    let error = decode("pecr.v1.RunRequest", r#"{"query":"#).expect_err("malformed");
    assert_eq!(error.field, None);
    assert!(
        error.reason.starts_with("malformed JSON: "),
        "{}",
        error.reason
    );
}

#[test]
fn path_bound_fields_and_parameters_are_named() {
    let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("pool");
    let mapping = JsonMapping::new(&pool, OPEN_MESSAGES);
    let call = pool
        .get_message_by_name("pecr.v1.CallOperatorRequest")
        .expect("message");
    let op_name = call.get_field_by_name("op_name").expect("op_name");
    for body in [
        r#"{"op_name":"x","session_id":"s","params":{}}"#,
        r#"{"opName":"x","session_id":"s","params":{}}"#,
    ] {
        let raw = parse_body(body.as_bytes()).expect("json");
        let error = mapping
            .decode_message(&call, raw, std::slice::from_ref(&op_name))
            .expect_err(body);
        let key = if body.contains("opName") {
            "opName"
        } else {
            "op_name"
        };
        assert_eq!(
            (error.field.as_deref(), error.reason.as_str()),
            (Some(key), "set by the URL path, not the body")
        );
    }
    let list = pool
        .get_message_by_name("pecr.v1.ListReplaysRequest")
        .expect("message");
    let limit = list.get_field_by_name("limit").expect("limit");
    let error = mapping.parse_text(&limit, "abc").expect_err("abc");
    assert_eq!(
        (error.field.as_deref(), error.reason.as_str()),
        (Some("limit"), "expected an integer")
    );
    // A body bound to one field names that field when refused whole.
    let submit = pool
        .get_message_by_name("pecr.v1.SubmitEvaluationRequest")
        .expect("message");
    let submission = submit.get_field_by_name("submission").expect("submission");
    let raw = parse_body(b"[]").expect("json");
    let error = mapping.decode_field(&submission, raw).expect_err("[]");
    assert_eq!(
        (error.field.as_deref(), error.reason.as_str()),
        (Some("submission"), "expected an object, found an array")
    );
    let raw = parse_body(br#"{"evaluationName":7}"#).expect("json");
    let error = mapping.decode_field(&submission, raw).expect_err("name");
    assert_eq!(error.field.as_deref(), Some("evaluationName"));
}
