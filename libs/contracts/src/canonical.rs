//! Canonical JSON (sorted keys, compact, fixed number and string forms) and
//! canonical text (LF line ends, NFC), byte for byte as the contract fixes them.

use serde_json::{Number, Value};
use unicode_normalization::UnicodeNormalization;

/// The canonical serialization of a JSON value.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// Canonical form of `text/plain` content: CRLF and lone CR become LF, then NFC.
pub fn canonical_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .nfc()
        .collect()
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(number) => write_number(out, number),
        Value::String(text) => write_string(out, text),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // Sort explicitly: serde_json's map order depends on a cargo feature.
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push('{');
            for (index, (key, member)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_string(out, key);
                out.push(':');
                write_value(out, member);
            }
            out.push('}');
        }
    }
}

fn write_number(out: &mut String, number: &Number) {
    if let Some(int) = number.as_i64() {
        out.push_str(&int.to_string());
    } else if let Some(int) = number.as_u64() {
        out.push_str(&int.to_string());
    } else {
        write_float(out, number.as_f64().unwrap_or(f64::NAN));
    }
}

/// Shortest round-trip digits; positional for decimal exponents -5..=15
/// (always with a fractional part), scientific with a signed exponent otherwise.
pub(crate) fn write_float(out: &mut String, value: f64) {
    if !value.is_finite() {
        out.push_str("null");
        return;
    }
    if value.is_sign_negative() {
        out.push('-');
    }
    if value == 0.0 {
        out.push_str("0.0");
        return;
    }
    // `{:e}` prints the shortest digits that round-trip, as `d.ddde<exp>`.
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();

    if (-5..=15).contains(&exponent) {
        if exponent >= 0 {
            let int_len = exponent as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exponent - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exponent > 0 { '+' } else { '-' });
        out.push_str(&exponent.unsigned_abs().to_string());
    }
}

fn write_string(out: &mut String, text: &str) {
    out.push('"');
    for ch in text.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(text: &str) -> String {
        canonical_json(&serde_json::from_str(text).expect("valid JSON"))
    }

    #[test]
    fn sorts_keys_recursively_and_keeps_array_order() {
        assert_eq!(
            canon(r#"{"b":1,"a":{"d":4,"c":3}}"#),
            r#"{"a":{"c":3,"d":4},"b":1}"#
        );
        assert_eq!(
            canon(r#"{"a":[{"b":2},{"a":1}]}"#),
            r#"{"a":[{"b":2},{"a":1}]}"#
        );
    }

    #[test]
    fn key_order_is_utf8_byte_order() {
        let value = json!({"z":0,"é":0,"b":0,"aa":0,"a":0,"_":0,"B":0,"1":0});
        assert_eq!(
            canonical_json(&value),
            r#"{"1":0,"B":0,"_":0,"a":0,"aa":0,"b":0,"z":0,"é":0}"#
        );
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        assert_eq!(canon(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
    }

    #[test]
    fn floats_follow_the_contract_forms() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (100.0, "100.0"),
            (0.95, "0.95"),
            (0.00001, "0.00001"),
            (1e15, "1000000000000000.0"),
            (-0.0, "-0.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e-6, "1e-6"),
            (2.5e-7, "2.5e-7"),
            (18446744073709551616.0, "1.8446744073709552e+19"),
            (-0.5, "-0.5"),
            (123.456, "123.456"),
        ];
        for (value, expected) in cases {
            let mut out = String::new();
            write_float(&mut out, *value);
            assert_eq!(&out, expected, "formatting {value:?}");
        }
    }

    #[test]
    fn parsed_numbers_keep_their_kind() {
        assert_eq!(
            canon("[1e2,0.10,-0,3,18446744073709551615]"),
            "[100.0,0.1,-0.0,3,18446744073709551615]"
        );
        assert_eq!(
            canon("[-9223372036854775808,18446744073709551616]"),
            "[-9223372036854775808,1.8446744073709552e+19]"
        );
    }

    #[test]
    fn non_finite_floats_serialize_as_null() {
        let mut out = String::new();
        write_float(&mut out, f64::NAN);
        assert_eq!(out, "null");
    }

    #[test]
    fn strings_escape_only_what_the_contract_lists() {
        let value = json!("q\"b\\\u{08}\u{0c}\n\r\t\u{01}\u{1f}/\u{7f}\u{2028}😀");
        assert_eq!(
            canonical_json(&value),
            "\"q\\\"b\\\\\\b\\f\\n\\r\\t\\u0001\\u001f/\u{7f}\u{2028}😀\""
        );
    }

    #[test]
    fn empty_containers_and_literals() {
        assert_eq!(
            canon(r#"{"a":{},"b":[],"c":null,"d":true,"e":false}"#),
            r#"{"a":{},"b":[],"c":null,"d":true,"e":false}"#
        );
    }

    #[test]
    fn text_canonicalization_normalizes_line_ends_and_nfc() {
        assert_eq!(
            canonical_text("line1\r\nline2\rline3\ne\u{0301}"),
            "line1\nline2\nline3\n\u{e9}"
        );
        assert_eq!(canonical_text("a\r\r\nb"), "a\n\nb");
    }
}
