//! Local mode (spec 10 §7.1): an optional shared secret, then the
//! principal header.

use pecr_errors::{ErrorCode, PecrError};
use tonic::metadata::MetadataMap;

use pecr_contracts::secret::constant_time_eq;

use crate::{EMPTY_ATTRS_HASH, Principal, header};

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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tests::metadata;

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
}
