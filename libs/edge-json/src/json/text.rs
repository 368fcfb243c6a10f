//! JSON text kept as text: numbers are never re-formatted.

/// Removes insignificant whitespace from valid JSON text, leaving every
/// other byte (number spellings, string escapes, member order) unchanged.
pub(crate) fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        } else {
            out.push(c);
            if c == '"' {
                in_string = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::compact;

    #[test]
    fn whitespace_outside_strings_goes_number_spellings_stay() {
        assert_eq!(
            compact(" { \"a\" : 1 ,\n\t\"b\": 1.0, \"c\" : [ 100, 1e2 ] } "),
            r#"{"a":1,"b":1.0,"c":[100,1e2]}"#
        );
        assert_eq!(
            compact(r#"{"s": "a \" b\\", "t":"x y"}"#),
            r#"{"s":"a \" b\\","t":"x y"}"#
        );
        assert_eq!(compact("null"), "null");
    }
}
