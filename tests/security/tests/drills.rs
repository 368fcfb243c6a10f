//! The security gate's fault drills: the real binaries under concurrent
//! load while a dependency fails (ledger-writer killed, PostgreSQL
//! restarted, a remote OPA that never answers, a safe view slower than its
//! statement timeout). Each drill checks that nothing is answered without
//! its ledger record, that every refusal is a clean, retryable PECR error,
//! and that the mesh recovers by itself; its figures go to
//! `target/security/drills/<drill>.json`.
//!
//! `scripts/security-gate.sh` runs them one at a time against its private
//! PostgreSQL cluster (`PECR_TEST_DB_URL`, `PECR_GATE_PG_RESTART`):
//! `cargo test -p pecr-security-tests --test drills -- --ignored --test-threads=1`.

#[path = "drills/audit.rs"]
mod audit;
#[path = "drills/figures.rs"]
mod figures;
#[path = "drills/harness.rs"]
mod harness;
#[path = "drills/ledger_kill.rs"]
mod ledger_kill;
#[path = "drills/load.rs"]
mod load;
#[path = "drills/opa_blackhole.rs"]
mod opa_blackhole;
#[path = "drills/pg_restart.rs"]
mod pg_restart;
#[path = "drills/slow_view.rs"]
mod slow_view;
