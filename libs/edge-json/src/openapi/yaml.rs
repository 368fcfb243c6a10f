//! A small block-style YAML writer for the OpenAPI document. Strings are
//! always double-quoted with JSON escapes (valid YAML), so no value can be
//! misread as a number, boolean or null.

/// A YAML value; maps keep the order they are built in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Str(String),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Null,
    Seq(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn str(text: impl Into<String>) -> Self {
        Self::Str(text.into())
    }

    pub fn map<K: Into<String>>(entries: impl IntoIterator<Item = (K, Node)>) -> Self {
        Self::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// The document as YAML text, ending with a newline.
pub(crate) fn to_string(root: &Node) -> String {
    let mut out = String::new();
    match root {
        Node::Map(entries) if !entries.is_empty() => write_map(entries, 0, false, &mut out),
        Node::Seq(items) if !items.is_empty() => write_seq(items, 0, &mut out),
        scalar => {
            out.push_str(&inline(scalar));
            out.push('\n');
        }
    }
    out
}

fn pad(indent: usize, out: &mut String) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// `first_padded`: the first entry continues a `- ` already written.
fn write_map(entries: &[(String, Node)], indent: usize, first_padded: bool, out: &mut String) {
    for (index, (key, value)) in entries.iter().enumerate() {
        if index > 0 || !first_padded {
            pad(indent, out);
        }
        out.push_str(&key_text(key));
        out.push(':');
        match value {
            Node::Map(inner) if !inner.is_empty() => {
                out.push('\n');
                write_map(inner, indent + 2, false, out);
            }
            Node::Seq(items) if !items.is_empty() => {
                out.push('\n');
                write_seq(items, indent + 2, out);
            }
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

fn write_seq(items: &[Node], indent: usize, out: &mut String) {
    for item in items {
        pad(indent, out);
        out.push('-');
        match item {
            Node::Map(entries) if !entries.is_empty() => {
                out.push(' ');
                write_map(entries, indent + 2, true, out);
            }
            Node::Seq(inner) if !inner.is_empty() => {
                out.push('\n');
                write_seq(inner, indent + 2, out);
            }
            scalar => {
                out.push(' ');
                out.push_str(&inline(scalar));
                out.push('\n');
            }
        }
    }
}

fn inline(node: &Node) -> String {
    match node {
        Node::Str(text) => quote(text),
        Node::Int(number) => number.to_string(),
        Node::UInt(number) => number.to_string(),
        Node::Float(number) => serde_json::to_string(number).unwrap_or_else(|_| "0".to_owned()),
        Node::Bool(flag) => flag.to_string(),
        Node::Null => "null".to_owned(),
        Node::Seq(_) => "[]".to_owned(),
        Node::Map(_) => "{}".to_owned(),
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".to_owned())
}

/// Plain keys when unambiguous (`type`, `$ref`, `x-pecr`), quoted otherwise
/// (paths, status codes, words YAML 1.1 reads as booleans or null).
fn key_text(key: &str) -> String {
    let mut chars = key.chars();
    let plain_start = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '$');
    let plain_rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    let reserved = matches!(
        key.to_ascii_lowercase().as_str(),
        "y" | "n" | "yes" | "no" | "on" | "off" | "true" | "false" | "null"
    );
    if plain_start && plain_rest && !reserved {
        key.to_owned()
    } else {
        quote(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_style_with_quoted_strings() {
        let doc = Node::map([
            ("openapi", Node::str("3.0.3")),
            (
                "paths",
                Node::map([(
                    "/v1/run",
                    Node::map([(
                        "post",
                        Node::map([
                            ("tags", Node::Seq(vec![Node::str("ControllerService")])),
                            (
                                "parameters",
                                Node::Seq(vec![Node::map([
                                    ("name", Node::str("limit")),
                                    ("required", Node::Bool(false)),
                                    ("schema", Node::map([("minimum", Node::Int(0))])),
                                ])]),
                            ),
                        ]),
                    )]),
                )]),
            ),
            ("empty", Node::map(Vec::<(String, Node)>::new())),
            ("none", Node::Seq(vec![])),
            ("on", Node::str("a \"quoted\"\nline")),
            ("200", Node::Seq(vec![Node::Seq(vec![Node::UInt(1)])])),
        ]);
        let expected = r#"openapi: "3.0.3"
paths:
  "/v1/run":
    post:
      tags:
        - "ControllerService"
      parameters:
        - name: "limit"
          required: false
          schema:
            minimum: 0
empty: {}
none: []
"on": "a \"quoted\"\nline"
"200":
  -
    - 1
"#;
        assert_eq!(to_string(&doc), expected);
    }
}
