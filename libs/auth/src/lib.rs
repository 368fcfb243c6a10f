//! Who is calling: local-mode authentication from request metadata
//! (spec 10 §7.1), shared by the gateway and the controller. OIDC arrives
//! with the mesh-security work.

use pecr_errors::{ErrorCode, PecrError};
use tonic::metadata::MetadataMap;

/// `hash_canonical_json({})`: the attribute hash of a local-mode principal.
const EMPTY_ATTRS_HASH: &str = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub principal_id: String,
    pub tenant_id: String,
    pub roles: Vec<String>,
    pub attrs_hash: String,
}

/// Local-mode authentication: optional shared secret, then the principal header.
#[derive(Clone)]
pub struct LocalAuth {
    shared_secret: Option<String>,
}

impl LocalAuth {
    pub fn new(shared_secret: Option<String>) -> Self {
        Self { shared_secret }
    }

    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, PecrError> {
        if let Some(secret) = &self.shared_secret {
            let offered = header(metadata, "x-pecr-local-auth-secret").ok_or_else(|| {
                PecrError::new(ErrorCode::AuthRequired, "missing local auth secret")
            })?;
            if !constant_time_eq(offered.as_bytes(), secret.as_bytes()) {
                return Err(PecrError::new(
                    ErrorCode::AuthInvalid,
                    "invalid local auth secret",
                ));
            }
        }
        let principal_id = header(metadata, "x-pecr-principal-id").ok_or_else(|| {
            PecrError::new(
                ErrorCode::PolicyDenied,
                "missing x-pecr-principal-id header",
            )
            .with_http(401)
        })?;
        Ok(Principal {
            principal_id,
            tenant_id: "local".to_owned(),
            roles: Vec::new(),
            attrs_hash: EMPTY_ATTRS_HASH.to_owned(),
        })
    }
}

/// A metadata value, trimmed; absent when missing, blank or not visible ASCII.
pub fn header(metadata: &MetadataMap, key: &str) -> Option<String> {
    let value = metadata.get(key)?.to_str().ok()?.trim();
    (!value.is_empty() && value.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .then(|| value.to_owned())
}

/// Compares without an early exit, so timing does not reveal the secret.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for (index, byte) in b.iter().enumerate() {
        diff |= usize::from(a.get(index).copied().unwrap_or(0) ^ byte);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata(pairs: &[(&'static str, &'static str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (key, value) in pairs {
            map.insert(*key, value.parse().expect("ascii value"));
        }
        map
    }

    #[test]
    fn scenario_20_local_mode_with_a_secret() {
        let auth = LocalAuth::new(Some("s3cret".into()));
        let code = |pairs| {
            auth.authenticate(&metadata(pairs))
                .err()
                .map(|e| (e.code, e.http_status))
        };
        assert_eq!(
            code(&[("x-pecr-principal-id", "dev")]),
            Some((ErrorCode::AuthRequired, 401))
        );
        assert_eq!(
            code(&[
                ("x-pecr-local-auth-secret", "nope"),
                ("x-pecr-principal-id", "dev")
            ]),
            Some((ErrorCode::AuthInvalid, 401))
        );
        assert_eq!(
            code(&[("x-pecr-local-auth-secret", "s3cret")]),
            Some((ErrorCode::PolicyDenied, 401))
        );
        let principal = auth
            .authenticate(&metadata(&[
                ("x-pecr-local-auth-secret", " s3cret "),
                ("x-pecr-principal-id", " dev "),
            ]))
            .expect("authenticated");
        assert_eq!(principal.principal_id, "dev");
        assert_eq!(principal.tenant_id, "local");
        assert!(principal.roles.is_empty());
        assert_eq!(
            principal.attrs_hash,
            pecr_contracts::hash_canonical_json(&serde_json::json!({}))
        );
    }

    #[test]
    fn without_a_secret_the_header_is_ignored() {
        let auth = LocalAuth::new(None);
        let principal = auth.authenticate(&metadata(&[
            ("x-pecr-local-auth-secret", "x"),
            ("x-pecr-principal-id", "support"),
        ]));
        assert_eq!(
            principal.map(|p| p.principal_id).ok().as_deref(),
            Some("support")
        );
        assert!(
            auth.authenticate(&metadata(&[("x-pecr-principal-id", "  ")]))
                .is_err()
        );
    }

    #[test]
    fn constant_time_compare_is_exact() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
    }
}
