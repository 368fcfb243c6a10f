//! The service tokens test meshes run with: ledger-writer knows its callers
//! by them (each is at least 32 characters, as a real token must be).

pub const LEDGER_GATEWAY_TOKEN: &str = "test-ledger-gateway-token-5b0c1e7d9a3f4e21";
pub const LEDGER_CONTROLLER_TOKEN: &str = "test-ledger-controller-token-8e2d4a6c1b9f0";
pub const LEDGER_AUDITOR_TOKEN: &str = "test-ledger-auditor-token-3f7a9c2e5d1b8046";

/// ledger-writer's settings naming the three test callers.
pub fn ledger_writer_tokens() -> Vec<(&'static str, String)> {
    vec![
        ("PECR_LEDGER_GATEWAY_TOKEN", LEDGER_GATEWAY_TOKEN.to_owned()),
        (
            "PECR_LEDGER_CONTROLLER_TOKEN",
            LEDGER_CONTROLLER_TOKEN.to_owned(),
        ),
        ("PECR_LEDGER_AUDITOR_TOKEN", LEDGER_AUDITOR_TOKEN.to_owned()),
    ]
}

/// The gateway's setting for its ledger-writer token.
pub fn gateway_ledger_token() -> (&'static str, String) {
    ("PECR_LEDGER_TOKEN", LEDGER_GATEWAY_TOKEN.to_owned())
}

/// The controller's setting for its ledger-writer token.
pub fn controller_ledger_token() -> (&'static str, String) {
    ("PECR_LEDGER_TOKEN", LEDGER_CONTROLLER_TOKEN.to_owned())
}

/// `authorization` metadata presenting `token`.
pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
