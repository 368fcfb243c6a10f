//! `--budget`: the REST contract's Budget JSON mapped to `v1::Budget`.
//!
//! Shape only (known keys, required keys, unsigned integers that fit);
//! the ranges are the controller's to check, so its error message is the
//! one users see and the two can never disagree.

use pecr_proto::v1::Budget;
use serde_json::{Map, Value};

const KEYS: [&str; 5] = [
    "max_operator_calls",
    "max_bytes",
    "max_wallclock_ms",
    "max_recursion_depth",
    "max_parallelism",
];

pub fn parse(text: &str) -> Result<Budget, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|err| format!("invalid budget JSON: {err}"))?;
    let Value::Object(object) = value else {
        return Err("the budget must be a JSON object".to_owned());
    };
    if let Some(unknown) = object.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(format!(
            "unknown budget field `{unknown}` (expected {})",
            KEYS.join(", ")
        ));
    }
    Ok(Budget {
        max_operator_calls: narrow(&object, "max_operator_calls")?,
        max_bytes: required(&object, "max_bytes")?,
        max_wallclock_ms: required(&object, "max_wallclock_ms")?,
        max_recursion_depth: narrow(&object, "max_recursion_depth")?,
        // `null` means absent, as in the REST contract.
        max_parallelism: match object.get("max_parallelism") {
            None | Some(Value::Null) => None,
            Some(_) => Some(narrow(&object, "max_parallelism")?),
        },
    })
}

fn required(object: &Map<String, Value>, key: &str) -> Result<u64, String> {
    let value = object
        .get(key)
        .ok_or_else(|| format!("missing budget field `{key}`"))?;
    // as_u64 is None for negatives, fractions and exponents (`1.0`, `1e2`),
    // which the contract does not accept as integers either.
    value
        .as_u64()
        .ok_or_else(|| format!("budget field `{key}` must be a non-negative integer"))
}

fn narrow(object: &Map<String, Value>, key: &str) -> Result<u32, String> {
    u32::try_from(required(object, key)?).map_err(|_| format!("budget field `{key}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_example_parses() {
        let budget = parse(
            r#"{"max_operator_calls":10,"max_bytes":1048576,"max_wallclock_ms":10000,"max_recursion_depth":5,"max_parallelism":4}"#,
        )
        .expect("valid");
        assert_eq!(
            budget,
            Budget {
                max_operator_calls: 10,
                max_bytes: 1_048_576,
                max_wallclock_ms: 10_000,
                max_recursion_depth: 5,
                max_parallelism: Some(4),
            }
        );
    }

    #[test]
    fn max_parallelism_is_optional() {
        let absent = parse(
            r#"{"max_operator_calls":1,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0}"#,
        )
        .expect("valid");
        assert_eq!(absent.max_parallelism, None);
        let null = parse(
            r#"{"max_operator_calls":1,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0,"max_parallelism":null}"#,
        )
        .expect("valid");
        assert_eq!(null.max_parallelism, None);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = parse(
            r#"{"max_operator_calls":1,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0,"max_tokens":5}"#,
        )
        .expect_err("unknown field");
        assert!(err.contains("max_tokens"), "{err}");
    }

    #[test]
    fn bad_shapes_are_refused() {
        for text in [
            "",
            "[]",
            "{}",
            r#"{"max_operator_calls":1,"max_bytes":0,"max_wallclock_ms":0}"#,
            r#"{"max_operator_calls":-1,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0}"#,
            r#"{"max_operator_calls":1.0,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0}"#,
            r#"{"max_operator_calls":1,"max_bytes":"1","max_wallclock_ms":0,"max_recursion_depth":0}"#,
            r#"{"max_operator_calls":4294967296,"max_bytes":0,"max_wallclock_ms":0,"max_recursion_depth":0}"#,
            r#"{"max_operator_calls":1,"max_bytes":null,"max_wallclock_ms":0,"max_recursion_depth":0}"#,
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
    }
}
