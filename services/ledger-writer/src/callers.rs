//! Who may call ledger-writer, and which RPCs each may call. Every caller
//! is a service known by name: by its client certificate when the gRPC port
//! requires one, by its service token otherwise. Nothing else gets in.

use pecr_config::Secret;
use pecr_server::{Methods, ServiceCallers};

/// The gateway: sessions and their events, and its version store.
pub const GATEWAY: &str = "pecr-gateway";
/// The controller: replay bundles and evaluations.
pub const CONTROLLER: &str = "pecr-controller";
/// An auditor: reads and verifies the ledger and seals checkpoints of it;
/// writes no session, event or evidence.
pub const AUDITOR: &str = "pecr-auditor";

const GATEWAY_RPCS: &[&str] = &[
    "RecordSession",
    "GetSession",
    "GetPolicySnapshot",
    "AppendEvent",
    "RecordOperatorCall",
    "RecordAccessRefusal",
    "RecordFinalize",
    "ResolveVersions",
    "RecordVersion",
    "GetVersions",
];

const CONTROLLER_RPCS: &[&str] = &[
    "StoreReplayBundle",
    "LoadReplayBundle",
    "LoadReplayBundles",
    "ListReplayBundles",
    "PruneReplays",
    "StoreEvaluation",
    "LoadEvaluation",
];

const AUDITOR_RPCS: &[&str] = &[
    "ListEvents",
    "GetPolicySnapshot",
    "CreateCheckpoint",
    "VerifyLedger",
];

/// The RPCs granted to a caller name; None for a name ledger-writer does not know.
pub fn grants(name: &str) -> Option<Methods> {
    match name {
        GATEWAY => Some(Methods::Only(GATEWAY_RPCS)),
        CONTROLLER => Some(Methods::Only(CONTROLLER_RPCS)),
        AUDITOR => Some(Methods::Only(AUDITOR_RPCS)),
        _ => None,
    }
}

/// Service tokens of the callers that have one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerTokens {
    pub gateway: Option<Secret>,
    pub controller: Option<Secret>,
    pub auditor: Option<Secret>,
}

impl CallerTokens {
    /// True when the gateway or the controller has a token (an auditor alone
    /// serves no one).
    pub fn name_a_service(&self) -> bool {
        self.gateway.is_some() || self.controller.is_some()
    }

    fn named(&self) -> [(&'static str, Option<&Secret>); 3] {
        [
            (GATEWAY, self.gateway.as_ref()),
            (CONTROLLER, self.controller.as_ref()),
            (AUDITOR, self.auditor.as_ref()),
        ]
    }

    /// True when two callers were given the same token (one could then act
    /// as the other).
    pub fn has_shared_token(&self) -> bool {
        let tokens: Vec<&Secret> = self.named().into_iter().filter_map(|(_, t)| t).collect();
        tokens
            .iter()
            .enumerate()
            .any(|(index, token)| tokens[index + 1..].contains(token))
    }

    /// Callers known by these tokens.
    pub fn callers(&self, service_name: &'static str) -> ServiceCallers {
        let callers: Vec<(String, String, Methods)> = self
            .named()
            .into_iter()
            .filter_map(|(name, token)| {
                Some((name.to_owned(), token?.expose().to_owned(), grants(name)?))
            })
            .collect();
        ServiceCallers::by_token(service_name, &callers)
    }
}

/// Callers known by certificate: the allowed identities that name a role.
pub fn by_certificate(service_name: &'static str, identities: &[String]) -> ServiceCallers {
    let callers: Vec<(String, Methods)> = identities
        .iter()
        .filter_map(|name| Some((name.clone(), grants(name)?)))
        .collect();
    ServiceCallers::by_certificate(service_name, &callers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every RPC of LedgerService is granted to some caller, and every grant
    /// names a real RPC: a new RPC cannot be forgotten or left open.
    #[test]
    fn grants_cover_exactly_the_service() {
        let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
            .expect("descriptor set");
        let service = pool
            .get_service_by_name(pecr_proto::service_names::LEDGER)
            .expect("LedgerService");
        let rpcs: Vec<String> = service.methods().map(|m| m.name().to_owned()).collect();
        let granted: Vec<&str> = [GATEWAY_RPCS, CONTROLLER_RPCS, AUDITOR_RPCS].concat();
        for rpc in &rpcs {
            assert!(
                granted.contains(&rpc.as_str()),
                "{rpc} is granted to nobody"
            );
        }
        for rpc in &granted {
            assert!(rpcs.iter().any(|known| known == rpc), "{rpc} is not an RPC");
        }
    }

    #[test]
    fn the_controller_cannot_write_sessions_nor_the_gateway_prune() {
        assert!(!CONTROLLER_RPCS.contains(&"RecordOperatorCall"));
        assert!(!CONTROLLER_RPCS.contains(&"RecordSession"));
        assert!(!GATEWAY_RPCS.contains(&"PruneReplays"));
        assert!(!GATEWAY_RPCS.contains(&"LoadReplayBundle"));
        for rpc in ["ResolveVersions", "RecordVersion", "GetVersions"] {
            assert!(!CONTROLLER_RPCS.contains(&rpc) && !AUDITOR_RPCS.contains(&rpc));
        }
        // The auditor reads, verifies and checkpoints; it records nothing
        // of a session and stores no replay.
        assert!(AUDITOR_RPCS.iter().all(|rpc| {
            ["List", "Get", "Verify"]
                .iter()
                .any(|prefix| rpc.starts_with(prefix))
                || *rpc == "CreateCheckpoint"
        }));
    }

    #[test]
    fn shared_tokens_are_noticed() {
        let token = Secret::new("t".repeat(40));
        let tokens = CallerTokens {
            gateway: Some(token.clone()),
            controller: Some(token),
            auditor: None,
        };
        assert!(tokens.has_shared_token());
        assert!(!CallerTokens::default().has_shared_token());
    }
}
