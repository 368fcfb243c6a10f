//! The bridge wire protocol (spec 30 §10.3): one JSON object per line in
//! each direction. Encoding and classification are pure, so every rule of
//! the message table is unit-tested here.

use pecr_contracts::budget::Budget;
use pecr_replay::TerminalMode;
use serde::Serialize;
use serde_json::Value;

use crate::budget_gate::StopReason;

/// The protocol versions this controller speaks (`1..=1`).
pub const PROTOCOL_MIN_VERSION: u64 = 1;
pub const PROTOCOL_MAX_VERSION: u64 = 1;

/// Operators a bridge may call (spec 30 §10.4).
pub const ALLOWLIST: [&str; 7] = [
    "search",
    "fetch_span",
    "fetch_rows",
    "aggregate",
    "list_versions",
    "diff",
    "redact",
];

/// Exact, case-sensitive allowlist match; callers trim first where the spec says so.
pub fn is_allowlisted(op_name: &str) -> bool {
    ALLOWLIST.contains(&op_name)
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProtocolRange {
    pub min_version: u64,
    pub max_version: u64,
}

/// The range sent in `start`.
pub const PROTOCOL_RANGE: ProtocolRange = ProtocolRange {
    min_version: PROTOCOL_MIN_VERSION,
    max_version: PROTOCOL_MAX_VERSION,
};

/// One entry of `operator_batch_result`, in original call order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchEntry {
    pub ok: bool,
    pub op_name: String,
    pub terminal_mode: TerminalMode,
    pub result: Value,
    pub bytes_len: u64,
}

/// A controller → bridge message.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToBridge<'a> {
    Start {
        protocol: ProtocolRange,
        /// The raw, untrimmed query.
        query: &'a str,
        budget: &'a Budget,
    },
    OperatorResult {
        id: &'a str,
        ok: bool,
        terminal_mode: TerminalMode,
        result: Option<&'a Value>,
        bytes_len: u64,
    },
    OperatorBatchResult {
        id: &'a str,
        results: &'a [BatchEntry],
    },
}

impl ToBridge<'_> {
    /// The message as one `\n`-terminated line.
    pub fn to_line(&self) -> Result<String, serde_json::Error> {
        let mut line = serde_json::to_string(self)?;
        line.push('\n');
        Ok(line)
    }
}

/// A single `call_operator` request.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorCall {
    pub id: String,
    pub depth: u32,
    /// As sent; empty when missing or not a string (so never allowlisted).
    pub op_name: String,
    pub params: Value,
}

/// One call of a `call_operator_batch`, name not yet trimmed.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchCall {
    pub op_name: String,
    pub params: Value,
}

/// A `call_operator_batch` request; `calls` is never empty.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRequest {
    pub id: String,
    pub depth: u32,
    pub calls: Vec<BatchCall>,
}

/// A bridge → controller message that passed the structural checks.
#[derive(Debug, Clone, PartialEq)]
pub enum FromBridge {
    /// `protocol_version` when it is an unsigned integer.
    StartAck {
        protocol_version: Option<u64>,
    },
    CallOperator(OperatorCall),
    CallOperatorBatch(BatchRequest),
    /// `final_answer` when it is a string.
    Done {
        final_answer: Option<String>,
    },
    /// Any other or missing `type`.
    Unknown,
}

impl FromBridge {
    /// The `type` label used in spans and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::StartAck { .. } => "start_ack",
            Self::CallOperator(_) => "call_operator",
            Self::CallOperatorBatch(_) => "call_operator_batch",
            Self::Done { .. } => "done",
            Self::Unknown => "unknown",
        }
    }
}

/// A line that is not JSON fails the run (`ERR_RLM_BRIDGE_PROTOCOL`).
pub fn parse_line(line: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(line)
}

/// Classifies one parsed message. A request whose `id` or `calls` are
/// unusable is the stop `bridge_invalid_message`; every later check
/// (depth, budget, allowlist) is the loop's.
pub fn classify(message: &Value) -> Result<FromBridge, StopReason> {
    let Some(kind) = message.get("type").and_then(Value::as_str) else {
        return Ok(FromBridge::Unknown);
    };
    match kind {
        "start_ack" => Ok(FromBridge::StartAck {
            protocol_version: message.get("protocol_version").and_then(Value::as_u64),
        }),
        "call_operator" => {
            let id = request_id(message)?;
            Ok(FromBridge::CallOperator(OperatorCall {
                id,
                depth: depth(message),
                op_name: message
                    .get("op_name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                params: message
                    .get("params")
                    .cloned()
                    .unwrap_or_else(|| Value::Object(serde_json::Map::new())),
            }))
        }
        "call_operator_batch" => {
            let id = request_id(message)?;
            let calls = batch_calls(message).ok_or(StopReason::BridgeInvalidMessage)?;
            Ok(FromBridge::CallOperatorBatch(BatchRequest {
                id,
                depth: depth(message),
                calls,
            }))
        }
        "done" => Ok(FromBridge::Done {
            final_answer: message
                .get("final_answer")
                .and_then(Value::as_str)
                .map(str::to_owned),
        }),
        _ => Ok(FromBridge::Unknown),
    }
}

/// Checks a `start_ack` version against the supported range.
pub fn negotiated(protocol_version: Option<u64>) -> Option<u64> {
    protocol_version
        .filter(|version| (PROTOCOL_MIN_VERSION..=PROTOCOL_MAX_VERSION).contains(version))
}

fn request_id(message: &Value) -> Result<String, StopReason> {
    message
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or(StopReason::BridgeInvalidMessage)
}

/// Absent or invalid means 0; a depth beyond u32 saturates (and fails the depth gate).
fn depth(message: &Value) -> u32 {
    message
        .get("depth")
        .and_then(Value::as_u64)
        .map_or(0, |depth| u32::try_from(depth).unwrap_or(u32::MAX))
}

/// A non-empty array whose entries all carry a string `op_name`.
fn batch_calls(message: &Value) -> Option<Vec<BatchCall>> {
    let entries = message.get("calls")?.as_array()?;
    if entries.is_empty() {
        return None;
    }
    entries
        .iter()
        .map(|entry| {
            Some(BatchCall {
                op_name: entry.get("op_name")?.as_str()?.to_owned(),
                params: entry.get("params").cloned().unwrap_or(Value::Null),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn classify_text(text: &str) -> Result<FromBridge, StopReason> {
        classify(&parse_line(text).expect("test line is JSON"))
    }

    #[test]
    fn call_operator_defaults_depth_and_params() {
        let parsed = classify_text(r#"{"type":"call_operator","id":"a1","op_name":"search"}"#);
        assert_eq!(
            parsed,
            Ok(FromBridge::CallOperator(OperatorCall {
                id: "a1".into(),
                depth: 0,
                op_name: "search".into(),
                params: json!({}),
            }))
        );
        let parsed = classify_text(
            r#"{"type":"call_operator","id":"a1","depth":-3,"op_name":7,"params":{"q":1}}"#,
        );
        let Ok(FromBridge::CallOperator(call)) = parsed else {
            panic!("expected a call, got {parsed:?}");
        };
        assert_eq!(call.depth, 0, "invalid depth means 0");
        assert_eq!(call.op_name, "", "a non-string name is never allowlisted");
        assert_eq!(call.params, json!({"q":1}));
        let Ok(FromBridge::CallOperator(call)) =
            classify_text(r#"{"type":"call_operator","id":"a","depth":99999999999}"#)
        else {
            panic!("expected a call");
        };
        assert_eq!(call.depth, u32::MAX);
    }

    #[test]
    fn missing_or_empty_id_is_invalid() {
        for text in [
            r#"{"type":"call_operator","op_name":"search"}"#,
            r#"{"type":"call_operator","id":"","op_name":"search"}"#,
            r#"{"type":"call_operator","id":5,"op_name":"search"}"#,
            r#"{"type":"call_operator_batch","calls":[{"op_name":"search"}]}"#,
            r#"{"type":"call_operator_batch","id":"","calls":[{"op_name":"search"}]}"#,
        ] {
            assert_eq!(
                classify_text(text),
                Err(StopReason::BridgeInvalidMessage),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_batch_calls_are_invalid() {
        for text in [
            r#"{"type":"call_operator_batch","id":"b"}"#,
            r#"{"type":"call_operator_batch","id":"b","calls":[]}"#,
            r#"{"type":"call_operator_batch","id":"b","calls":"search"}"#,
            r#"{"type":"call_operator_batch","id":"b","calls":[{"op_name":"search"},{"params":{}}]}"#,
            r#"{"type":"call_operator_batch","id":"b","calls":[{"op_name":1}]}"#,
            r#"{"type":"call_operator_batch","id":"b","calls":["search"]}"#,
        ] {
            assert_eq!(
                classify_text(text),
                Err(StopReason::BridgeInvalidMessage),
                "{text}"
            );
        }
    }

    #[test]
    fn batch_keeps_names_untrimmed_and_params_default_null() {
        let parsed = classify_text(
            r#"{"type":"call_operator_batch","id":"b","depth":3,"calls":[{"op_name":" search "},{"op_name":"fetch_span","params":{"object_id":"x"}}]}"#,
        );
        assert_eq!(
            parsed,
            Ok(FromBridge::CallOperatorBatch(BatchRequest {
                id: "b".into(),
                depth: 3,
                calls: vec![
                    BatchCall {
                        op_name: " search ".into(),
                        params: Value::Null,
                    },
                    BatchCall {
                        op_name: "fetch_span".into(),
                        params: json!({"object_id":"x"}),
                    },
                ],
            }))
        );
    }

    #[test]
    fn unknown_or_missing_type() {
        for text in [r#"{"type":"hello"}"#, r#"{"id":"x"}"#, "42", r#"["done"]"#] {
            assert_eq!(classify_text(text), Ok(FromBridge::Unknown), "{text}");
        }
        assert!(parse_line("not json").is_err());
        assert!(parse_line("").is_err());
    }

    #[test]
    fn done_takes_a_string_answer_only() {
        assert_eq!(
            classify_text(r#"{"type":"done","final_answer":"UNKNOWN: x","stop_reason":"zzz"}"#),
            Ok(FromBridge::Done {
                final_answer: Some("UNKNOWN: x".into())
            })
        );
        assert_eq!(
            classify_text(r#"{"type":"done","final_answer":3}"#),
            Ok(FromBridge::Done { final_answer: None })
        );
    }

    #[test]
    fn protocol_versions() {
        let ack = |text: &str| match classify_text(text) {
            Ok(FromBridge::StartAck { protocol_version }) => negotiated(protocol_version),
            other => panic!("expected start_ack, got {other:?}"),
        };
        assert_eq!(ack(r#"{"type":"start_ack","protocol_version":1}"#), Some(1));
        assert_eq!(ack(r#"{"type":"start_ack","protocol_version":99}"#), None);
        assert_eq!(ack(r#"{"type":"start_ack","protocol_version":0}"#), None);
        assert_eq!(ack(r#"{"type":"start_ack","protocol_version":-1}"#), None);
        assert_eq!(ack(r#"{"type":"start_ack","protocol_version":"1"}"#), None);
        assert_eq!(ack(r#"{"type":"start_ack","protocol_version":1.5}"#), None);
        assert_eq!(ack(r#"{"type":"start_ack"}"#), None);
    }

    #[test]
    fn start_and_results_encode_as_single_lines() {
        let budget = Budget {
            max_operator_calls: 10,
            max_bytes: 0,
            max_wallclock_ms: 1000,
            max_recursion_depth: 5,
            max_parallelism: None,
        };
        let line = ToBridge::Start {
            protocol: PROTOCOL_RANGE,
            query: " raw\nquery ",
            budget: &budget,
        }
        .to_line()
        .expect("start encodes");
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1, "one line per message");
        let value: Value = serde_json::from_str(&line).expect("start is JSON");
        assert_eq!(
            value,
            json!({
                "type": "start",
                "protocol": {"min_version": 1, "max_version": 1},
                "query": " raw\nquery ",
                "budget": {
                    "max_operator_calls": 10, "max_bytes": 0, "max_wallclock_ms": 1000,
                    "max_recursion_depth": 5, "max_parallelism": null
                }
            })
        );

        let result = json!({"refs": []});
        let line = ToBridge::OperatorResult {
            id: "c1",
            ok: true,
            terminal_mode: TerminalMode::Supported,
            result: Some(&result),
            bytes_len: 11,
        }
        .to_line()
        .expect("result encodes");
        let value: Value = serde_json::from_str(&line).expect("result is JSON");
        assert_eq!(
            value,
            json!({"type":"operator_result","id":"c1","ok":true,"terminal_mode":"SUPPORTED","result":{"refs":[]},"bytes_len":11})
        );

        let entries = [BatchEntry {
            ok: true,
            op_name: "search".into(),
            terminal_mode: TerminalMode::InsufficientEvidence,
            result: json!([]),
            bytes_len: 2,
        }];
        let line = ToBridge::OperatorBatchResult {
            id: "b1",
            results: &entries,
        }
        .to_line()
        .expect("batch encodes");
        let value: Value = serde_json::from_str(&line).expect("batch is JSON");
        assert_eq!(
            value,
            json!({"type":"operator_batch_result","id":"b1","results":[{"ok":true,"op_name":"search","terminal_mode":"INSUFFICIENT_EVIDENCE","result":[],"bytes_len":2}]})
        );
    }

    #[test]
    fn allowlist_is_exact() {
        assert!(is_allowlisted("fetch_span"));
        assert!(!is_allowlisted(" search"));
        assert!(!is_allowlisted("Search"));
        assert!(!is_allowlisted("drop_table"));
        assert!(!is_allowlisted(""));
    }
}
