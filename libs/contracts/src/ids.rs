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

/// Replay and evaluation ids: 1..=256 characters of `[A-Za-z0-9._-]`.
pub fn is_safe_store_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 256
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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
    }
}
