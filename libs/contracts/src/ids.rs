//! Identifiers: ULIDs and the correlation ids carried in `x-pecr-*` headers.

/// One generator per process, so ULIDs minted in the same millisecond still
/// sort in minting order (ledger events of one call are ordered by id).
static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());

/// A fresh ULID in canonical uppercase form, increasing within this process.
pub fn new_ulid() -> String {
    let monotonic = GENERATOR
        .lock()
        .ok()
        .and_then(|mut generator| generator.generate().ok());
    // The random part overflowing within one millisecond is astronomically
    // rare; a plain ULID is still unique then, only not ordered.
    match monotonic {
        Some(id) => id.to_string(),
        None => ulid::Ulid::new().to_string(),
    }
}

/// Longest request id kept.
pub const REQUEST_ID_MAX_LEN: usize = 64;

/// `x-pecr-request-id`: trimmed, only ASCII alphanumerics and `-_.` kept,
/// cut to 64 characters; a fresh ULID when nothing remains.
pub fn sanitize_request_id(raw: Option<&str>) -> String {
    let kept: String = raw
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(REQUEST_ID_MAX_LEN)
        .collect();
    if kept.is_empty() { new_ulid() } else { kept }
}

/// Parses a ULID case-insensitively into canonical uppercase. A first
/// character above `7` would overflow 128 bits and is rejected.
pub fn parse_ulid(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.len() != 26 || !matches!(trimmed.as_bytes()[0], b'0'..=b'7') {
        return None;
    }
    ulid::Ulid::from_string(trimmed)
        .ok()
        .map(|id| id.to_string())
}

/// A client-supplied trace id: a ULID or a W3C trace id (32 hex digits, as
/// in `traceparent`), both 128 bits, in canonical ULID form. The all-zero id
/// is invalid in W3C trace context and refused in both spellings.
pub fn parse_trace_id(raw: &str) -> Option<String> {
    let trimmed = raw.trim();
    let id = if trimmed.len() == 32 && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
        ulid::Ulid(u128::from_str_radix(trimmed, 16).ok()?)
    } else {
        ulid::Ulid::from_string(&parse_ulid(trimmed)?).ok()?
    };
    (id.0 != 0).then(|| id.to_string())
}

/// `x-pecr-trace-id`: the trace id it holds (see [`parse_trace_id`]), or a
/// fresh one.
pub fn trace_id_or_new(raw: Option<&str>) -> String {
    raw.and_then(parse_trace_id).unwrap_or_else(new_ulid)
}

/// The characters of every client-named id: `[A-Za-z0-9._-]`, as the
/// `pattern` of `(pecr.v1.field_rules)` writes it.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._-]+$";
/// Longest id a client may name: session ids, operator names, view and
/// field names, claim-map, claim and evidence ids.
pub const ID_MAX_LEN: usize = 128;
/// Longest replay or evaluation id (spec 30 §12.4).
pub const STORE_ID_MAX_LEN: usize = 256;
/// Longest label: a name a person chooses (evaluation names, policy
/// actions, filter values, principal ids).
pub const LABEL_MAX_LEN: usize = 256;
/// Longest file-corpus object id (a relative path).
pub const OBJECT_ID_MAX_LEN: usize = 1024;
/// Labels hold no control characters (Unicode `Cc`: U+0000–U+001F, U+007F–U+009F).
pub const LABEL_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]+$";
/// Free text (queries, answers, claim text) holds no NUL: PostgreSQL
/// refuses it in `text` and `jsonb`.
pub const TEXT_PATTERN: &str = "^[^\\u0000]*$";

/// Why a client-named value breaks its shape rule; the text is the reason
/// given to the client after the field's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("must be 1..={max} characters of [A-Za-z0-9._-]", max = ID_MAX_LEN)]
    Id,
    #[error("must be 1..={max} characters of [A-Za-z0-9._-]", max = STORE_ID_MAX_LEN)]
    StoreId,
    #[error("must be 1..={0} characters without control characters")]
    Label(usize),
    #[error("must not contain NUL characters")]
    Text,
}

fn id_chars(id: &str) -> bool {
    id.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The shared id rule: 1..=[`ID_MAX_LEN`] characters of `[A-Za-z0-9._-]`.
pub fn check_id(id: &str) -> Result<(), ShapeError> {
    let fits = !id.is_empty() && id.len() <= ID_MAX_LEN && id_chars(id);
    if fits { Ok(()) } else { Err(ShapeError::Id) }
}

/// Replay and evaluation ids: 1..=256 characters of `[A-Za-z0-9._-]`.
pub fn is_safe_store_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= STORE_ID_MAX_LEN && id_chars(id)
}

/// [`is_safe_store_id`] as a rule.
pub fn check_store_id(id: &str) -> Result<(), ShapeError> {
    if is_safe_store_id(id) {
        Ok(())
    } else {
        Err(ShapeError::StoreId)
    }
}

/// A label: 1..=`max_chars` characters, none of them a control character.
pub fn check_label(text: &str, max_chars: usize) -> Result<(), ShapeError> {
    let mut count = 0_usize;
    for c in text.chars() {
        count += 1;
        if c.is_control() || count > max_chars {
            return Err(ShapeError::Label(max_chars));
        }
    }
    if count == 0 {
        return Err(ShapeError::Label(max_chars));
    }
    Ok(())
}

/// Free text: anything but NUL.
pub fn check_text(text: &str) -> Result<(), ShapeError> {
    if text.contains('\0') {
        Err(ShapeError::Text)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulids_increase_within_a_process() {
        let ids: Vec<String> = (0..1000).map(|_| new_ulid()).collect();
        assert!(ids.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn request_ids_are_sanitized() {
        assert_eq!(sanitize_request_id(Some("  req 1/2 ")), "req12");
        assert_eq!(sanitize_request_id(Some(&"a".repeat(80))).len(), 64);
        let generated = sanitize_request_id(Some(" /// "));
        assert!(parse_ulid(&generated).is_some());
        assert!(parse_ulid(&sanitize_request_id(None)).is_some());
    }

    #[test]
    fn trace_ids_are_canonical_ulids() {
        assert_eq!(
            parse_ulid("01arz3ndektsv4rrffq69g5fav").as_deref(),
            Some("01ARZ3NDEKTSV4RRFFQ69G5FAV")
        );
        assert_eq!(parse_ulid("ZZZZZZZZZZZZZZZZZZZZZZZZZZ"), None);
        assert_eq!(parse_ulid("01ARZ3NDEKTSV4RRFFQ69G5FA"), None);
        assert_eq!(parse_ulid("01ARZ3NDEKTSV4RRFFQ69G5FAU"), None);
        assert_eq!(
            parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"),
            Some(ulid::Ulid(0x4bf92f3577b34da6a3ce929d0e0e4736).to_string())
        );
        assert_eq!(parse_trace_id("00000000000000000000000000000000"), None);
        assert_eq!(parse_trace_id("00000000000000000000000000"), None);
        assert_eq!(parse_trace_id("4bf92f3577b34da6a3ce929d0e0e473"), None);
        assert_eq!(parse_trace_id("4bf92f3577b34da6a3ce929d0e0e473g"), None);
        let fresh = trace_id_or_new(Some("not-a-ulid"));
        assert_eq!(parse_ulid(&fresh), Some(fresh.clone()));
    }

    #[test]
    fn store_ids_are_restricted() {
        assert!(is_safe_store_id(
            "01ARZ3NDEKTSV4RRFFQ69G5FAV-01ARZ3NDEKTSV4RRFFQ69G5FAW"
        ));
        assert!(!is_safe_store_id(""));
        assert!(!is_safe_store_id("../etc/passwd"));
        assert!(!is_safe_store_id(&"a".repeat(257)));
        assert_eq!(check_store_id("a\0"), Err(ShapeError::StoreId));
    }

    #[test]
    fn ids_follow_the_shared_rule() {
        assert_eq!(check_id("01ARZ3NDEKTSV4RRFFQ69G5FAV"), Ok(()));
        assert_eq!(check_id("safe_customer_view_public"), Ok(()));
        assert_eq!(check_id(&"a".repeat(ID_MAX_LEN)), Ok(()));
        for bad in ["", " a", "a b", "a\0", "a\u{1}", "a/b", "\u{e9}"] {
            assert_eq!(check_id(bad), Err(ShapeError::Id), "{bad:?}");
        }
        assert_eq!(check_id(&"a".repeat(ID_MAX_LEN + 1)), Err(ShapeError::Id));
        assert_eq!(
            ShapeError::Id.to_string(),
            "must be 1..=128 characters of [A-Za-z0-9._-]"
        );
    }

    #[test]
    fn labels_refuse_control_characters_and_count_characters() {
        assert_eq!(check_label("smoke test é", 12), Ok(()));
        assert_eq!(check_label(&"é".repeat(3), 3), Ok(()));
        for bad in ["", "a\0", "a\tb", "a\nb", "a\u{7f}", "a\u{85}"] {
            assert_eq!(check_label(bad, 10), Err(ShapeError::Label(10)), "{bad:?}");
        }
        assert_eq!(check_label("abcd", 3), Err(ShapeError::Label(3)));
        assert_eq!(
            ShapeError::Label(256).to_string(),
            "must be 1..=256 characters without control characters"
        );
    }

    #[test]
    fn text_refuses_only_nul() {
        assert_eq!(check_text(""), Ok(()));
        assert_eq!(check_text("line\n\ttab \u{1}"), Ok(()));
        assert_eq!(check_text("a\0b"), Err(ShapeError::Text));
    }
}
