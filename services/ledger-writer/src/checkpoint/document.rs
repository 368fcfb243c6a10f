//! The checkpoint document: the canonical JSON that is hashed, signed and
//! stored verbatim, so an auditor checks the signature over the stored
//! bytes without re-deriving anything.

use pecr_contracts::{canonical_json, hash_canonical_json, sha256_hex};
use serde_json::{Value, json};

/// Names the recipe inside every document, so a later recipe can never
/// produce a hash that collides with one of this one.
const RECIPE: &str = "pecr-ledger-checkpoint/v1";

/// The hash the first checkpoint follows.
pub fn genesis() -> String {
    hash_canonical_json(&json!({ "recipe": RECIPE, "genesis": "pecr-ledger" }))
}

/// What a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub checkpoint_seq: i64,
    /// RFC 3339, UTC, microseconds: the database's `created_at`.
    pub created_at: String,
    pub prev_checkpoint_hash: String,
    pub merkle_root: String,
    pub session_count: i64,
    /// The hex Ed25519 public key that signs it; None when unsigned.
    pub public_key: Option<String>,
}

impl Document {
    /// The exact bytes that are hashed and signed.
    pub fn text(&self) -> String {
        canonical_json(&json!({
            "recipe": RECIPE,
            "checkpoint_seq": self.checkpoint_seq,
            "created_at": self.created_at,
            "prev_checkpoint_hash": self.prev_checkpoint_hash,
            "merkle_root": self.merkle_root,
            "session_count": self.session_count,
            "public_key": self.public_key,
        }))
    }

    /// The document a stored text holds; the text must be exactly the
    /// canonical form of its fields.
    pub fn parse(text: &str) -> Result<Self, String> {
        let value: Value =
            serde_json::from_str(text).map_err(|err| format!("document is not JSON: {err}"))?;
        let string = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("document has no {name}"))
        };
        let number = |name: &str| {
            value
                .get(name)
                .and_then(Value::as_i64)
                .ok_or_else(|| format!("document has no {name}"))
        };
        if value.get("recipe").and_then(Value::as_str) != Some(RECIPE) {
            return Err(format!("document is not a {RECIPE} document"));
        }
        let document = Self {
            checkpoint_seq: number("checkpoint_seq")?,
            created_at: string("created_at")?,
            prev_checkpoint_hash: string("prev_checkpoint_hash")?,
            merkle_root: string("merkle_root")?,
            session_count: number("session_count")?,
            public_key: match value.get("public_key") {
                Some(Value::Null) => None,
                Some(Value::String(key)) => Some(key.clone()),
                _ => return Err("document has no public_key (a key or null)".to_owned()),
            },
        };
        if document.text() != text {
            return Err("document is not the canonical form of its fields".to_owned());
        }
        Ok(document)
    }
}

/// The checkpoint's hash: sha256 of its document's bytes.
pub fn checkpoint_hash(document_text: &str) -> String {
    sha256_hex(document_text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn document() -> Document {
        Document {
            checkpoint_seq: 1,
            created_at: "2026-12-06T12:00:00.000001Z".into(),
            prev_checkpoint_hash: genesis(),
            merkle_root: "ab".into(),
            session_count: 2,
            public_key: None,
        }
    }

    #[test]
    fn the_text_is_canonical_and_round_trips() {
        let document = document();
        let text = document.text();
        assert_eq!(
            text,
            format!(
                r#"{{"checkpoint_seq":1,"created_at":"2026-12-06T12:00:00.000001Z","merkle_root":"ab","prev_checkpoint_hash":"{}","public_key":null,"recipe":"pecr-ledger-checkpoint/v1","session_count":2}}"#,
                genesis()
            )
        );
        assert_eq!(Document::parse(&text), Ok(document));
    }

    #[test]
    fn a_text_that_is_not_canonical_or_not_a_checkpoint_is_refused() {
        let text = document().text();
        let spaced = text.replace(",", ", ");
        assert!(Document::parse(&spaced).is_err());
        let other = text.replace(RECIPE, "something/v1");
        assert!(Document::parse(&other).is_err());
        assert!(Document::parse("[]").is_err());
    }
}
