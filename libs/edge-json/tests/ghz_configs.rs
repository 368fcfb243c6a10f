//! The ghz load-test configurations in perf/ghz, checked against the
//! contract without ghz: each file's `call` names a method of the compiled
//! descriptor set, its `proto` file and `import-paths` exist and declare
//! that method, `data` decodes as the method's input message in the proto3
//! JSON mapping ghz uses (free-form JSON fields as strings of JSON text),
//! and every metadata name is a header the services read.

use std::path::{Path, PathBuf};

use prost_reflect::{DescriptorPool, DynamicMessage, MethodDescriptor, ReflectMessage};
use serde_json::Value;

/// Headers the services read: the caller's identity (pecr-auth), the
/// request id and trace id (the request stack of pecr-server).
fn headers_the_services_read() -> Vec<&'static str> {
    let mut headers = pecr_auth::IDENTITY_HEADERS.to_vec();
    headers.extend(["x-pecr-request-id", "x-pecr-trace-id"]);
    headers
}

fn repository_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn config(name: &str) -> Value {
    let path = repository_root().join("perf/ghz").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path:?}: {err}"));
    serde_json::from_str(&text).unwrap_or_else(|err| panic!("{path:?}: {err}"))
}

fn text<'a>(config: &'a Value, key: &str) -> &'a str {
    config[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is not a string in {config}"))
}

/// `package.Service.Method`, as ghz spells `call`, in the descriptor set.
fn method(pool: &DescriptorPool, call: &str) -> MethodDescriptor {
    let (service, method) = call.rsplit_once('.').expect("call is Service.Method");
    let service = pool
        .get_service_by_name(service)
        .unwrap_or_else(|| panic!("no service {service} in the descriptor set"));
    service
        .methods()
        .find(|m| m.name() == method)
        .unwrap_or_else(|| panic!("no method {method} in {}", service.full_name()))
}

/// Checks one configuration and returns its decoded `data`.
fn check(name: &str, expected_call: &str) -> DynamicMessage {
    let config = config(name);
    let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let call = text(&config, "call");
    assert_eq!(call, expected_call, "{name}");
    let method = method(&pool, call);

    // ghz compiles `proto` itself, resolving imports from `import-paths`
    // (relative to where it runs: the repository root).
    let root = repository_root();
    let proto = text(&config, "proto");
    assert!(root.join(proto).is_file(), "{name}: no file {proto}");
    let import_paths: Vec<&str> = config["import-paths"]
        .as_array()
        .expect("import-paths is a list")
        .iter()
        .map(|path| path.as_str().expect("an import path is a string"))
        .collect();
    let file_name = import_paths
        .iter()
        .find_map(|dir| Path::new(proto).strip_prefix(dir).ok())
        .unwrap_or_else(|| panic!("{name}: {proto} lies under none of {import_paths:?}"));
    assert_eq!(
        Path::new(method.parent_service().parent_file().name()),
        file_name,
        "{name}: {call} is declared in another file than {proto}"
    );

    assert_eq!(
        config["insecure"],
        Value::Bool(true),
        "{name}: the dev mesh is plaintext"
    );
    let host = text(&config, "host");
    assert!(
        host.starts_with("127.0.0.1:"),
        "{name}: host {host} is not loopback"
    );

    let readable = headers_the_services_read();
    let metadata = config["metadata"]
        .as_object()
        .expect("metadata is an object");
    assert!(
        metadata.contains_key("x-pecr-principal-id"),
        "{name}: no principal"
    );
    for (header, value) in metadata {
        assert!(
            readable.contains(&header.as_str()),
            "{name}: the services do not read {header}"
        );
        assert!(value.is_string(), "{name}: {header} is not a string");
    }

    DynamicMessage::deserialize(method.input(), config["data"].clone())
        .unwrap_or_else(|err| panic!("{name}: data is no {}: {err}", method.input().full_name()))
}

fn string_field(message: &DynamicMessage, field: &str) -> String {
    message
        .get_field_by_name(field)
        .and_then(|value| value.as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no string {field} in {}", message.descriptor().full_name()))
}

#[test]
fn run_config_calls_controller_run() {
    let request = check("run.json", "pecr.v1.ControllerService.Run");
    assert!(!string_field(&request, "query").is_empty());
    assert!(
        request.has_field_by_name("budget"),
        "the run names its budget"
    );
}

#[test]
fn call_operator_config_calls_gateway_call_operator() {
    let request = check("call_operator.json", "pecr.v1.GatewayService.CallOperator");
    assert_eq!(string_field(&request, "op_name"), "fetch_rows");
    // Over gRPC `params` is a string of JSON text.
    let params: Value =
        serde_json::from_str(&string_field(&request, "params")).expect("params is JSON");
    assert!(params["view_id"].is_string(), "{params}");
    // The session's id and token are placeholders perf/ghz/README.md fills in.
    assert_eq!(string_field(&request, "session_id"), "SESSION_ID");
    assert_eq!(
        config("call_operator.json")["metadata"]["x-pecr-session-token"],
        "SESSION_TOKEN"
    );
}

/// The checks above can fail: data the method does not take is refused.
#[test]
fn data_of_another_message_does_not_decode() {
    let pool = DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET).expect("descriptor set");
    let run = method(&pool, "pecr.v1.ControllerService.Run");
    let call_operator_data = config("call_operator.json")["data"].clone();
    assert!(DynamicMessage::deserialize(run.input(), call_operator_data).is_err());
    let object_params =
        serde_json::json!({"op_name": "fetch_rows", "session_id": "s", "params": {"view_id": "v"}});
    let call_operator = method(&pool, "pecr.v1.GatewayService.CallOperator");
    assert!(
        DynamicMessage::deserialize(call_operator.input(), object_params).is_err(),
        "params must be a string of JSON text over gRPC"
    );
}
