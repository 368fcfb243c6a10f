//! The golden vectors V1–V20 of the contract spec, byte for byte, and the
//! hashing acceptance scenarios.

use serde_json::{Value, json};

use super::*;
use crate::budget::Budget;
use crate::canonical::canonical_json;

const V4_EMPTY_OBJECT: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
const V8_SNAPSHOT_DEV: &str = "fbaa1a39f1f98474a7eded447a9d1df4c7f150a9fb1e9e4e87d70057e8f5c5df";
const EPOCH: &str = "1970-01-01T00:00:00Z";

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("vector input is valid JSON")
}

fn snapshot_hash(
    principal: &str,
    tenant: &str,
    roles: &[&str],
    attrs: &str,
    bundle: &str,
) -> String {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    policy_snapshot_hash(&PolicySnapshotInputs {
        principal_id: principal,
        tenant_id: tenant,
        principal_roles: &roles,
        principal_attrs_hash: attrs,
        policy_bundle_hash: bundle,
        as_of_time: EPOCH,
    })
}

fn fixture(path: &str) -> Vec<u8> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/fs_corpus/");
    std::fs::read(format!("{root}{path}")).expect("fixture file exists")
}

fn whole_file_evidence_id(object_id: &str) -> String {
    let bytes = fixture(object_id);
    let text = String::from_utf8(bytes.clone()).expect("fixture is UTF-8");
    let version_id = sha256_hex(&bytes);
    let content_hash = text_content_hash(&text);
    assert_eq!(content_hash, version_id, "fixtures are already canonical");
    let span = json!({
        "type": "text_span",
        "start_byte": 0,
        "end_byte": bytes.len(),
        "line_start": 1,
        "line_end": 1 + bytes.iter().filter(|b| **b == b'\n').count(),
    });
    evidence_unit_id(&EvidenceIdentity {
        source_system: "fs_corpus",
        object_id,
        version_id: &version_id,
        span_or_row_spec: &span,
        content_hash: &content_hash,
        as_of_time: EPOCH,
        policy_snapshot_hash: V8_SNAPSHOT_DEV,
        transform_chain: &[],
    })
}

#[test]
fn v1_sha256_of_abc() {
    assert_eq!(
        sha256_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn sha256_hex_recognition() {
    assert!(is_sha256_hex(
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    ));
    assert!(!is_sha256_hex("ABCDEF"));
    assert!(!is_sha256_hex(&"a".repeat(63)));
    assert!(!is_sha256_hex(&"a".repeat(65)));
    assert!(!is_sha256_hex(&"a".repeat(66)));
    assert!(!is_sha256_hex(&"A".repeat(64)));
}

#[test]
fn v2_v3_canonical_forms() {
    let v2 = parse(r#"{"b":1,"a":{"d":4,"c":3}}"#);
    assert_eq!(canonical_json(&v2), r#"{"a":{"c":3,"d":4},"b":1}"#);
    assert_eq!(
        hash_canonical_json(&v2),
        "943d56ce0b02b80a8afcd12d849426226b68f2d8cd2840af8f6f93067f14c360"
    );
    assert_eq!(
        canonical_json(&parse(r#"{"a":[{"b":2},{"a":1}]}"#)),
        r#"{"a":[{"b":2},{"a":1}]}"#
    );
}

#[test]
fn v4_v5_v6_object_hashes() {
    assert_eq!(hash_canonical_json(&json!({})), V4_EMPTY_OBJECT);
    assert_eq!(
        hash_canonical_json(&json!({"dept":"eng"})),
        "f76ac232fe24bf5e21d4289ea46d8592fe4a153b0bfde8475291678cdd27fdbd"
    );
    let v6 = parse(r#"{"k":"v","obj":{"a":"b","c":"d"},"arr":["x","y"]}"#);
    assert_eq!(
        canonical_json(&v6),
        r#"{"arr":["x","y"],"k":"v","obj":{"a":"b","c":"d"}}"#
    );
    assert_eq!(
        hash_canonical_json(&v6),
        "6695997f09fb6c27486a8f66e708691bbd454ccb76aae57c765532c88a095507"
    );
}

#[test]
fn v7_numbers_strings_and_literals() {
    let v7 = parse(
        "{\"z\":[3,1.0,1e2,-0.5,1e16,0.000001],\"a\":\"\u{e9}\\n\\u0007\",\"M\":null,\"b\":true}",
    );
    assert_eq!(
        canonical_json(&v7),
        "{\"M\":null,\"a\":\"\u{e9}\\n\\u0007\",\"b\":true,\"z\":[3,1.0,100.0,-0.5,1e+16,1e-6]}"
    );
    assert_eq!(
        hash_canonical_json(&v7),
        "b8f894e8e4b7addfc2f86c71817a7b5972312ef7646d7be762829cc1f739bdd8"
    );
}

#[test]
fn v8_v9_v10_policy_snapshots() {
    let a64 = "a".repeat(64);
    let b64 = "b".repeat(64);
    assert_eq!(
        snapshot_hash("dev", "local", &[], V4_EMPTY_OBJECT, &a64),
        V8_SNAPSHOT_DEV
    );
    assert_eq!(
        snapshot_hash("support", "local", &[], V4_EMPTY_OBJECT, &a64),
        "c293eb471e848d49facd6169427c5ef7a3cb30c1bbdd63921824dfd6da3b1816"
    );
    assert_eq!(
        snapshot_hash("dev", "local", &[], &a64, &b64),
        "600a03a1f262b0c2496823cf42af5494c37c89b915bb045cb4696a1919314ceb"
    );
    let v10 = "ddeb4ebb2a77a58a336d928ed1282b938984aa41cb9a65b015f417c83776a9c8";
    assert_eq!(
        snapshot_hash("principal", "tenant", &["z", "a"], &a64, &b64),
        v10
    );
    assert_eq!(
        snapshot_hash("principal", "tenant", &["a", "z"], &a64, &b64),
        v10
    );
    assert_ne!(
        snapshot_hash("principal", "tenant", &["a", "z"], &a64, &"c".repeat(64)),
        v10
    );
}

#[test]
fn v11_principal_id_hash() {
    assert_eq!(
        principal_id_hash("dev"),
        "5db1c5e4410a534d9875292f115306a3a6e3ea5f0677032ec9e84f69bf35cda7"
    );
}

#[test]
fn v12_budget_hash() {
    let budget = Budget {
        max_operator_calls: 10,
        max_bytes: 1_048_576,
        max_wallclock_ms: 1000,
        max_recursion_depth: 3,
        max_parallelism: None,
    };
    assert_eq!(
        budget_hash(&budget),
        "bd9d20244c4b8878b71b6a02075145268d86a8180e07f9dc22859db3e3369956"
    );
}

#[test]
fn v13_canonical_text_hash() {
    assert_eq!(
        text_content_hash("line1\r\nline2\rline3\ne\u{0301}"),
        "d52ff4b5180c67ad6fe236f9fb3bd7c0eb418d100d35c6482f41dbb657a4822c"
    );
}

#[test]
fn v14_v15_whole_file_evidence_ids() {
    assert_eq!(
        whole_file_evidence_id("public/public_1.txt"),
        "f2a54285533a2e77a3262fa16318865222116f53ef798683c85009a1c37cdf3f"
    );
    assert_eq!(
        whole_file_evidence_id("restricted/restricted_1.txt"),
        "de40053185638a6656b45281a4e09ab79ffeac41f90fa9c35028cb7bd543a036"
    );
    assert_eq!(
        whole_file_evidence_id("injection/injection_1.txt"),
        "4fae22213c13bb5ec9adf2dbe389f1b7d2f73805493ae91860279870f108cca8"
    );
}

#[test]
fn fixture_files_match_the_contract() {
    let cases = [
        (
            "public/public_1.txt",
            128,
            "463bace3fd0318503dfc3052a7309c531d9993e2075a3618030ad513e0883579",
        ),
        (
            "restricted/restricted_1.txt",
            168,
            "944d6771dc2dba29ab361645d4d4677841120b694eb034f883b44abab61c34f1",
        ),
        (
            "injection/injection_1.txt",
            312,
            "c3a588fe2f7ad60ed96da0cef919cbf77439d20be3941856e278eb6b29011856",
        ),
    ];
    for (path, len, sha) in cases {
        let bytes = fixture(path);
        assert_eq!(bytes.len(), len, "{path}");
        assert_eq!(sha256_hex(&bytes), sha, "{path}");
    }
    let restricted = String::from_utf8(fixture("restricted/restricted_1.txt")).unwrap_or_default();
    assert!(restricted.contains("PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f"));
    let injection = String::from_utf8(fixture("injection/injection_1.txt")).unwrap_or_default();
    assert!(injection.contains("PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c"));
}

#[test]
fn v16_v17_safe_view_row() {
    let content = json!({"customer_id":"cust_public_1","status":"active"});
    let content_hash = hash_canonical_json(&content);
    assert_eq!(
        content_hash,
        "d1c942e925eed4192130e50f3a7d4031b6186e3be6036671ccf9d17e5117d1ed"
    );
    let version_id = sha256_hex("2026-01-01T00:00:00Z");
    assert_eq!(
        version_id,
        "06fea089d547d0b62143aee268eed0ebac99884c102736f285e41bb1acad10dc"
    );
    let span = json!({
        "type": "db_row",
        "view_id": "safe_customer_view_public",
        "primary_key": {"tenant_id": "local", "customer_id": "cust_public_1"},
        "fields": ["customer_id", "status"],
    });
    assert_eq!(
        canonical_json(&span),
        r#"{"fields":["customer_id","status"],"primary_key":{"customer_id":"cust_public_1","tenant_id":"local"},"type":"db_row","view_id":"safe_customer_view_public"}"#
    );
    let id = evidence_unit_id(&EvidenceIdentity {
        source_system: "pg_safeview",
        object_id: "safe_customer_view_public:local:cust_public_1",
        version_id: &version_id,
        span_or_row_spec: &span,
        content_hash: &content_hash,
        as_of_time: EPOCH,
        policy_snapshot_hash: V8_SNAPSHOT_DEV,
        transform_chain: &[],
    });
    assert_eq!(
        id,
        "82f52a1490bfd949c470e1b4743a7717ac53424778c30c7a66a417b1435e245c"
    );
    assert_eq!(
        sha256_hex("2026-02-01T00:00:00Z"),
        "3086e6a58e09ab181442c6896eb8cfe9b585f7f151a29d8b26cb4cdcc5149793"
    );
}

#[test]
fn v18_redaction_transform_hash() {
    let step = TransformStep::new(
        "redaction",
        json!({"deny_fields":["admin_note","injection_note"]}),
    );
    assert_eq!(
        step.transform_hash,
        "2cfde533e8d17ea1a98cd71b68bc187e5406176b030092bf59911d773875f115"
    );
}

#[test]
fn v19_finalize_result_payload() {
    let payload = json!({
        "terminal_mode": "INSUFFICIENT_EVIDENCE",
        "claim_map_id": "cm1",
        "coverage_threshold": 0.95,
        "coverage_observed": 1.0,
        "budget_counters": {"operator_calls_used": 0, "bytes_used": 0, "max_operator_calls": 10, "max_bytes": 1_048_576},
        "request_id": "req1",
    });
    assert_eq!(
        canonical_json(&payload),
        r#"{"budget_counters":{"bytes_used":0,"max_bytes":1048576,"max_operator_calls":10,"operator_calls_used":0},"claim_map_id":"cm1","coverage_observed":1.0,"coverage_threshold":0.95,"request_id":"req1","terminal_mode":"INSUFFICIENT_EVIDENCE"}"#
    );
    assert_eq!(
        hash_canonical_json(&payload),
        "c728401bda6fe2fcdb3f975a15be4c3e2b33775e04f86bb1e8cc7c5f66f865c3"
    );
}

#[test]
fn v20_claim_id() {
    assert_eq!(
        claim_id("insufficient evidence to answer the query.", "UNKNOWN", &[]),
        "76f6a5677446734df3eda2aa42d57412879f6d193d6a276b4f869f5674984851"
    );
    assert_eq!(
        claim_id(
            "  insufficient evidence to answer the query.\n",
            "UNKNOWN",
            &[]
        ),
        "76f6a5677446734df3eda2aa42d57412879f6d193d6a276b4f869f5674984851"
    );
}

#[test]
fn member_order_does_not_change_the_hash() {
    let a = parse(r#"{"z":1,"a":{"y":true,"b":[2,1]}}"#);
    let b = parse(r#"{"a":{"b":[2,1],"y":true},"z":1}"#);
    assert_eq!(hash_canonical_json(&a), hash_canonical_json(&b));
}

#[test]
fn bundle_hash_blanks_its_own_field() {
    let bundle = json!({"metadata": {"run_id": "run_01", "bundle_hash": "x"}, "query": "q"});
    let blank = json!({"metadata": {"run_id": "run_01", "bundle_hash": ""}, "query": "q"});
    assert_eq!(bundle_hash(&bundle), Some(hash_canonical_json(&blank)));
    assert_eq!(bundle_hash(&json!({"query": "q"})), None);
}
