//! Support for the security gate (`scripts/security-gate.sh`): the mesh the
//! gate started, read from the `PECR_GATE_*` variables it exports, and the
//! canaries each principal may never see. The tests in `tests/` are
//! `#[ignore]`d in a plain `cargo test`: they need that mesh, and the gate
//! runs them with `--ignored`.

/// Every canary string of the fixtures.
pub const CANARIES: [&str; 6] = [
    "PECR_CANARY_RESTRICTED_ALPHA_6b3b91c2a7b44a9f",
    "PECR_CANARY_INJECTION_BETA_29a1e0d7a03d4d8c",
    "PECR_CANARY_PG_ADMIN_DELTA_1f2d8c6f87f84b76",
    "PECR_CANARY_PG_SUPPORT_EPSILON_6c6f4f07c04f4f8f",
    "PECR_CANARY_PG_ADMIN_DELTA_2a519d6b7f4348d4",
    "PECR_CANARY_PG_SUPPORT_EPSILON_8d77b9a9d9e24c2b",
];

/// A gate setting; panics with a clear message when the gate did not set it.
pub fn gate_env(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| {
        panic!("{key} is not set: run this test through scripts/security-gate.sh")
    })
}
