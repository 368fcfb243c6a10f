//! Which caller opened each MCP session. A session is bound as a PECR
//! session is: to its tenant, principal and attribute set.
//!
//! The transport's gate checks [`SessionOwners`] before a request reaches a
//! session; a handler that holds data of its own (the gateway's evidence)
//! also keeps its [`Owner`] and checks it on every request, so the binding
//! does not rest on one table's expiry alone.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pecr_auth::Principal;

/// Who a session belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    tenant_id: String,
    principal_id: String,
    attrs_hash: String,
}

impl Owner {
    pub fn of(principal: &Principal) -> Self {
        Self {
            tenant_id: principal.tenant_id.clone(),
            principal_id: principal.principal_id.clone(),
            attrs_hash: principal.attrs_hash.clone(),
        }
    }
}

/// Owners by MCP session id. An entry unused for longer than the
/// transport keeps an idle session is dropped: the session is gone too.
pub(crate) struct SessionOwners {
    idle: Duration,
    entries: Mutex<HashMap<String, (Owner, Instant)>>,
}

impl SessionOwners {
    pub fn new(idle: Duration) -> Self {
        Self {
            idle,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `owner` may use session `id`. An unknown id is let through:
    /// the transport answers it as a session that does not exist.
    pub fn admits(&self, id: &str, owner: &Owner) -> bool {
        let Ok(mut entries) = self.entries.lock() else {
            return false;
        };
        match entries.get_mut(id) {
            Some((recorded, seen)) if recorded == owner => {
                *seen = Instant::now();
                true
            }
            Some(_) => false,
            None => true,
        }
    }

    pub fn record(&self, id: &str, owner: Owner) {
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let now = Instant::now();
        let idle = self.idle;
        entries.retain(|_, (_, seen)| now.duration_since(*seen) <= idle);
        entries.insert(id.to_owned(), (owner, now));
    }

    /// Sessions `owner` holds (those used within the idle time).
    pub fn held_by(&self, owner: &Owner) -> usize {
        let Ok(entries) = self.entries.lock() else {
            return usize::MAX;
        };
        let now = Instant::now();
        entries
            .values()
            .filter(|(recorded, seen)| recorded == owner && now.duration_since(*seen) <= self.idle)
            .count()
    }

    pub fn forget(&self, id: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(tenant: &str, principal: &str, attrs: &str) -> Owner {
        Owner {
            tenant_id: tenant.into(),
            principal_id: principal.into(),
            attrs_hash: attrs.into(),
        }
    }

    #[test]
    fn a_session_admits_only_its_owner() {
        let owners = SessionOwners::new(Duration::from_secs(60));
        owners.record("s1", owner("local", "dev", "a"));
        assert!(owners.admits("s1", &owner("local", "dev", "a")));
        assert!(!owners.admits("s1", &owner("local", "support", "a")));
        assert!(!owners.admits("s1", &owner("other", "dev", "a")));
        assert!(!owners.admits("s1", &owner("local", "dev", "b")));
        assert!(owners.admits("unknown", &owner("local", "guest", "a")));
        owners.record("s2", owner("local", "dev", "a"));
        assert_eq!(owners.held_by(&owner("local", "dev", "a")), 2);
        assert_eq!(owners.held_by(&owner("local", "support", "a")), 0);
        owners.forget("s1");
        assert!(owners.admits("s1", &owner("local", "support", "a")));
        assert_eq!(owners.held_by(&owner("local", "dev", "a")), 1);
    }

    #[test]
    fn idle_entries_are_dropped_when_another_is_recorded() {
        let owners = SessionOwners::new(Duration::ZERO);
        owners.record("old", owner("local", "dev", "a"));
        std::thread::sleep(Duration::from_millis(2));
        owners.record("new", owner("local", "dev", "a"));
        assert!(owners.admits("old", &owner("local", "support", "a")));
    }
}
