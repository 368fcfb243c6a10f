//! The OpenAPI document's tree, rendered as YAML by `yaml_serde`. Maps keep
//! the order they are built in, so the document stays deterministic. The
//! emitter quotes every string a YAML 1.2 reader would take for something
//! else; the 1.1-only forms it leaves plain are kept out of the document by
//! a test in the parent module.

use serde::{Serialize, Serializer};

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

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Str(text) => serializer.serialize_str(text),
            Self::Int(number) => serializer.serialize_i64(*number),
            Self::UInt(number) => serializer.serialize_u64(*number),
            Self::Float(number) => serializer.serialize_f64(*number),
            Self::Bool(flag) => serializer.serialize_bool(*flag),
            Self::Null => serializer.serialize_unit(),
            Self::Seq(items) => serializer.collect_seq(items),
            Self::Map(entries) => serializer.collect_map(entries.iter().map(|(k, v)| (k, v))),
        }
    }
}

/// The document as YAML text, ending with a newline.
pub(crate) fn to_string(root: &Node) -> Result<String, yaml_serde::Error> {
    yaml_serde::to_string(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_keep_their_order_and_strings_stay_strings() {
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
                            ("required", Node::Bool(false)),
                            ("minimum", Node::Int(-1)),
                            ("maximum", Node::UInt(256)),
                            ("multipleOf", Node::Float(0.5)),
                        ]),
                    )]),
                )]),
            ),
            ("empty", Node::map(Vec::<(String, Node)>::new())),
            ("none", Node::Seq(vec![])),
            ("enum", Node::Seq(vec![Node::str("rlm"), Node::Null])),
            ("on", Node::str("a \"quoted\"\nline")),
            ("200", Node::Seq(vec![Node::Seq(vec![Node::UInt(1)])])),
        ]);
        let text = to_string(&doc).expect("renders");
        assert!(text.ends_with('\n'));
        let keys: Vec<&str> = text
            .lines()
            .filter(|line| !line.starts_with([' ', '-']))
            .filter_map(|line| line.split(':').next())
            .collect();
        assert_eq!(
            keys,
            ["openapi", "paths", "empty", "none", "enum", "on", "'200'"]
        );

        // Strings that YAML could read as numbers, booleans or null are
        // quoted: they come back as the same strings.
        let back: yaml_serde::Value = yaml_serde::from_str(&text).expect("valid YAML");
        assert_eq!(back["openapi"], "3.0.3");
        assert_eq!(back["on"], "a \"quoted\"\nline");
        assert!(back.get("200").is_some());
        let post = &back["paths"]["/v1/run"]["post"];
        assert_eq!(post["tags"][0], "ControllerService");
        assert_eq!(post["required"], false);
        assert_eq!(post["minimum"], -1);
        assert_eq!(post["maximum"], 256);
        assert_eq!(post["multipleOf"], 0.5);
        assert!(back["empty"].as_mapping().is_some_and(|m| m.is_empty()));
        assert!(back["none"].as_sequence().is_some_and(|s| s.is_empty()));
        assert!(back["enum"][1].is_null());
        for word in ["true", "null", "1.5", "yes", "off", "~", ""] {
            let rendered = to_string(&Node::str(word)).expect("renders");
            let read: yaml_serde::Value = yaml_serde::from_str(&rendered).expect("valid YAML");
            assert_eq!(read, word, "{word:?} as {rendered:?}");
        }
    }
}
