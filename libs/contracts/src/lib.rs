//! PECR's contract rules, free of I/O: canonical JSON, every hash recipe of
//! the contract spec, identifiers, budget and time validation, evidence units
//! and secrets. Replay bundles and scoring build on these in `pecr-replay`.

pub mod budget;
pub mod canonical;
pub mod evidence;
pub mod hashing;
pub mod ids;
pub mod secret;
pub mod terms;
pub mod time;

pub use budget::{Budget, BudgetError};
pub use canonical::{canonical_json, canonical_text};
pub use hashing::{hash_canonical_json, is_sha256_hex, sha256_hex};
