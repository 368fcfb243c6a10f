//! Who may use a session. A session is bound to the tenant, principal and
//! attribute hash it was created for and to a secret token; a caller is
//! checked against them before the session's lock is taken and before
//! anything is written to its ledger stream.

use std::sync::Arc;
use std::time::Duration;

use pecr_auth::Principal;
use pecr_contracts::secret::constant_time_eq;
use pecr_contracts::sha256_hex;
use pecr_errors::{PecrError, PecrResult};
use pecr_proto::v1;

/// Bytes of operating-system randomness in a session token (256 bits).
const TOKEN_BYTES: usize = 32;

/// A fresh session token: 256 bits from the operating system's CSPRNG as
/// lowercase hex, unrelated to any id. Only its hash is stored.
pub fn new_session_token() -> PecrResult<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(|_| {
        tracing::error!("the operating system's random source failed");
        PecrError::internal("cannot create a session token")
    })?;
    Ok(hex::encode(bytes))
}

/// The parts of a session that never change after it is recorded (the
/// ledger's triggers refuse to change them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCredentials {
    tenant_id: String,
    principal_id: String,
    attrs_hash: String,
    token_hash: String,
    expires_at_epoch_ms: u64,
}

impl From<&v1::SessionRecord> for SessionCredentials {
    fn from(session: &v1::SessionRecord) -> Self {
        Self {
            tenant_id: session.tenant_id.clone(),
            principal_id: session.principal_id.clone(),
            attrs_hash: session.principal_attrs_hash.clone(),
            token_hash: session.session_token_hash.clone(),
            expires_at_epoch_ms: session.session_token_expires_at_epoch_ms,
        }
    }
}

/// Why a caller may not use a session. Every refusal answers the same 401;
/// the reason goes to the ledger and the log only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    TenantMismatch,
    PrincipalMismatch,
    AttributesMismatch,
    InvalidToken,
    ExpiredToken,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Self::TenantMismatch => "tenant_mismatch",
            Self::PrincipalMismatch => "principal_mismatch",
            Self::AttributesMismatch => "attributes_mismatch",
            Self::InvalidToken => "invalid_session_token",
            Self::ExpiredToken => "expired_session_token",
        }
    }
}

impl SessionCredentials {
    /// Admits `principal` presenting `token` at `now_ms`. The token hash is
    /// compared in constant time, and always, so the answer's timing does
    /// not tell which check failed.
    pub fn admit(&self, principal: &Principal, token: &str, now_ms: u64) -> Result<(), Refusal> {
        let token_matches =
            constant_time_eq(sha256_hex(token).as_bytes(), self.token_hash.as_bytes());
        if principal.tenant_id != self.tenant_id {
            Err(Refusal::TenantMismatch)
        } else if principal.principal_id != self.principal_id {
            Err(Refusal::PrincipalMismatch)
        } else if principal.attrs_hash != self.attrs_hash {
            Err(Refusal::AttributesMismatch)
        } else if !token_matches {
            Err(Refusal::InvalidToken)
        } else if now_ms > self.expires_at_epoch_ms {
            Err(Refusal::ExpiredToken)
        } else {
            Ok(())
        }
    }
}

/// Credentials of recent sessions, so a call checks its caller without a
/// ledger read; entries live no longer than a token does.
pub struct CredentialCache {
    cache: moka::future::Cache<String, Arc<SessionCredentials>>,
}

impl CredentialCache {
    pub fn new(max_entries: u64, token_ttl: Duration) -> Self {
        Self {
            cache: moka::future::Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(token_ttl.max(Duration::from_millis(1)))
                .build(),
        }
    }

    pub async fn get(&self, session_id: &str) -> Option<Arc<SessionCredentials>> {
        self.cache.get(session_id).await
    }

    pub async fn insert(&self, session: &v1::SessionRecord) -> Arc<SessionCredentials> {
        let credentials = Arc::new(SessionCredentials::from(session));
        self.cache
            .insert(session.session_id.clone(), Arc::clone(&credentials))
            .await;
        credentials
    }

    /// Drops a finalized session: its credentials are read again from the
    /// ledger, should anyone still present them.
    pub async fn forget(&self, session_id: &str) {
        self.cache.invalidate(session_id).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(tenant: &str, id: &str, attrs: &str) -> Principal {
        Principal {
            principal_id: id.into(),
            tenant_id: tenant.into(),
            roles: Vec::new(),
            attrs_hash: attrs.into(),
        }
    }

    fn credentials(token: &str) -> SessionCredentials {
        SessionCredentials {
            tenant_id: "tenant-a".into(),
            principal_id: "dev".into(),
            attrs_hash: "attrs-1".into(),
            token_hash: sha256_hex(token),
            expires_at_epoch_ms: 1_000,
        }
    }

    #[test]
    fn tokens_are_256_random_bits_in_hex() {
        let first = new_session_token().expect("token");
        let second = new_session_token().expect("token");
        assert_eq!(first.len(), 64);
        assert!(
            first
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_ne!(first, second);
        // Nothing of a ULID: no shared prefix with a fresh id's timestamp.
        assert!(pecr_contracts::ids::parse_ulid(&first).is_none());
    }

    #[test]
    fn only_the_bound_caller_with_the_token_is_admitted() {
        let session = credentials("t0k3n");
        let owner = principal("tenant-a", "dev", "attrs-1");
        assert_eq!(session.admit(&owner, "t0k3n", 999), Ok(()));
        assert_eq!(session.admit(&owner, "t0k3n", 1_000), Ok(()));
        assert_eq!(
            session.admit(&owner, "t0k3n", 1_001),
            Err(Refusal::ExpiredToken)
        );
        assert_eq!(
            session.admit(&owner, "t0k3m", 5),
            Err(Refusal::InvalidToken)
        );
        assert_eq!(
            session.admit(&principal("tenant-b", "dev", "attrs-1"), "t0k3n", 5),
            Err(Refusal::TenantMismatch)
        );
        assert_eq!(
            session.admit(&principal("tenant-a", "support", "attrs-1"), "t0k3n", 5),
            Err(Refusal::PrincipalMismatch)
        );
        assert_eq!(
            session.admit(&principal("tenant-a", "dev", "attrs-2"), "t0k3n", 5),
            Err(Refusal::AttributesMismatch)
        );
    }
}
