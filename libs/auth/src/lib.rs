//! Who is calling: caller authentication from request metadata, shared by
//! the gateway and the controller (spec 10 §7). Local mode trusts a
//! principal header behind an optional shared secret; OIDC mode verifies an
//! RS256 bearer token against a cached JWKS. It runs inside the gRPC
//! handlers, so the REST edge (which calls them in-process) is covered too.

mod jwks;
mod local;
mod oidc;

use std::sync::Arc;

use pecr_config::{FrontDoor, StartupError};
use pecr_errors::PecrError;
use tonic::metadata::MetadataMap;

pub use local::LocalAuth;
pub use oidc::OidcAuth;

/// `hash_canonical_json({})`: the attribute hash of a local-mode principal
/// and of an OIDC principal without ABAC claims (vector V4).
pub const EMPTY_ATTRS_HASH: &str =
    "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub principal_id: String,
    pub tenant_id: String,
    /// Sorted, de-duplicated.
    pub roles: Vec<String>,
    pub attrs_hash: String,
}

impl Principal {
    /// This caller's rate-limit key in `bucket`. The tenant is part of it,
    /// length-prefixed so no split of tenant and principal ids can collide:
    /// `dev` of one tenant never spends the quota of `dev` of another.
    pub fn rate_key(&self, bucket: &str) -> String {
        format!(
            "{bucket}:{}:{}:{}",
            self.tenant_id.len(),
            self.tenant_id,
            self.principal_id
        )
    }
}

/// The configured authentication mode; cheap to clone.
#[derive(Clone)]
pub enum Authenticator {
    Local(LocalAuth),
    Oidc(Arc<OidcAuth>),
}

impl Authenticator {
    /// The authenticator `front_door` describes. In OIDC mode the JWKS is
    /// loaded now: an unusable inline set is `ERR_INVALID_CONFIG`, a failed
    /// fetch `ERR_AUTH_UNAVAILABLE`, and start-up stops either way.
    pub async fn from_front_door(front_door: &FrontDoor) -> Result<Self, StartupError> {
        Ok(match &front_door.oidc {
            None => Self::Local(LocalAuth::new(front_door.shared_secret.clone())),
            Some(settings) => Self::Oidc(Arc::new(OidcAuth::new(settings).await?)),
        })
    }

    /// The caller of a request, or the 400/401/503 to answer instead.
    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, PecrError> {
        check_identity_headers(metadata)?;
        match self {
            Self::Local(local) => local.authenticate(metadata),
            Self::Oidc(oidc) => oidc.authenticate(metadata).await,
        }
    }

    pub fn is_oidc(&self) -> bool {
        matches!(self, Self::Oidc(_))
    }

    /// In OIDC mode, the issuer clients get their tokens from.
    pub fn oidc_issuer(&self) -> Option<&str> {
        match self {
            Self::Local(_) => None,
            Self::Oidc(oidc) => Some(oidc.issuer()),
        }
    }

    /// In OIDC mode, the caller's `authorization` header (trimmed) to pass
    /// on to the next service (spec 30 §3.3); None in local mode.
    pub fn forwarded_authorization(&self, metadata: &MetadataMap) -> Option<String> {
        self.is_oidc()
            .then(|| header(metadata, "authorization"))
            .flatten()
    }
}

/// Metadata that says who is calling: each may be sent at most once.
pub const IDENTITY_HEADERS: [&str; 4] = [
    "x-pecr-principal-id",
    "x-pecr-local-auth-secret",
    "authorization",
    "x-pecr-session-token",
];

/// Longest `x-pecr-principal-id` (a label, as OIDC principal claims).
pub const PRINCIPAL_ID_MAX_LEN: usize = pecr_contracts::ids::LABEL_MAX_LEN;

/// Refuses, with 400 `ERR_INVALID_PARAMS` naming the header, identity
/// metadata sent twice (which copy counts would depend on who reads it) or
/// holding anything but visible ASCII and spaces (control characters, NUL,
/// non-ASCII bytes), and a principal id over [`PRINCIPAL_ID_MAX_LEN`].
pub fn check_identity_headers(metadata: &MetadataMap) -> Result<(), PecrError> {
    for key in IDENTITY_HEADERS {
        let mut values = metadata.get_all(key).iter();
        let Some(value) = values.next() else {
            continue;
        };
        if values.next().is_some() {
            return Err(PecrError::invalid_params(format!("duplicate {key} header")));
        }
        let printable = value
            .as_encoded_bytes()
            .iter()
            .all(|b| (0x20..0x7f).contains(b));
        let too_long = key == "x-pecr-principal-id"
            && value.as_encoded_bytes().trim_ascii().len() > PRINCIPAL_ID_MAX_LEN;
        if !printable || too_long {
            return Err(PecrError::invalid_params(format!("invalid {key} header")));
        }
    }
    Ok(())
}

/// A metadata value, trimmed; absent when missing, blank or not visible ASCII.
pub fn header(metadata: &MetadataMap, key: &str) -> Option<String> {
    let value = metadata.get(key)?.to_str().ok()?.trim();
    (!value.is_empty() && value.bytes().all(|b| (0x20..0x7f).contains(&b)))
        .then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn metadata(pairs: &[(&'static str, &str)]) -> MetadataMap {
        let mut map = MetadataMap::new();
        for (key, value) in pairs {
            map.insert(*key, value.parse().expect("ascii value"));
        }
        map
    }

    #[test]
    fn empty_attrs_hash_is_vector_v4() {
        assert_eq!(
            EMPTY_ATTRS_HASH,
            pecr_contracts::hash_canonical_json(&serde_json::json!({}))
        );
    }

    fn principal(tenant_id: &str, principal_id: &str) -> Principal {
        Principal {
            principal_id: principal_id.into(),
            tenant_id: tenant_id.into(),
            roles: Vec::new(),
            attrs_hash: EMPTY_ATTRS_HASH.into(),
        }
    }

    #[test]
    fn rate_keys_carry_the_tenant_and_cannot_collide() {
        assert_eq!(
            principal("local", "dev").rate_key("sessions"),
            "sessions:5:local:dev"
        );
        assert_ne!(
            principal("acme", "dev").rate_key("run"),
            principal("globex", "dev").rate_key("run")
        );
        // "a:b" + "c" and "a" + "b:c" join to the same text without the length.
        assert_ne!(
            principal("a:b", "c").rate_key("run"),
            principal("a", "b:c").rate_key("run")
        );
    }

    #[tokio::test]
    async fn identity_headers_are_single_and_printable() {
        let auth = Authenticator::Local(LocalAuth::new(None));
        let refused = |map: MetadataMap| {
            let auth = auth.clone();
            async move {
                auth.authenticate(&map)
                    .await
                    .err()
                    .map(|e| (e.code, e.http_status, e.message))
            }
        };
        for key in IDENTITY_HEADERS {
            let mut twice = metadata(&[("x-pecr-principal-id", "dev")]);
            twice.append(key, "a".parse().expect("ascii"));
            twice.append(key, "b".parse().expect("ascii"));
            assert_eq!(
                refused(twice).await,
                Some((
                    pecr_errors::ErrorCode::InvalidParams,
                    400,
                    format!("duplicate {key} header")
                ))
            );
        }
        // What HTTP lets through: tab and bytes above 0x7f.
        for bad in [&b"d\tev"[..], b"d\xc3\xa9v"] {
            let mut headers = http::HeaderMap::new();
            let value = http::HeaderValue::from_bytes(bad).expect("header bytes");
            headers.insert("x-pecr-principal-id", value);
            let map = MetadataMap::from_headers(headers);
            assert_eq!(refused(map).await.map(|e| e.1), Some(400), "{bad:?}");
        }
        let long = "a".repeat(PRINCIPAL_ID_MAX_LEN + 1);
        assert_eq!(
            refused(metadata(&[("x-pecr-principal-id", &long)]))
                .await
                .map(|e| e.2),
            Some("invalid x-pecr-principal-id header".to_owned())
        );
        let fits = "a".repeat(PRINCIPAL_ID_MAX_LEN);
        assert!(
            auth.authenticate(&metadata(&[("x-pecr-principal-id", &format!(" {fits} "))]))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn local_mode_forwards_no_authorization() {
        let auth = Authenticator::Local(LocalAuth::new(None));
        let metadata = metadata(&[("authorization", "Bearer x")]);
        assert!(!auth.is_oidc());
        assert_eq!(auth.forwarded_authorization(&metadata), None);
    }
}
