//! Release provenance: what `scripts/release.sh` writes beside its tarballs
//! and what `pecr release verify` checks with nothing but a public key.
//!
//! A release directory holds the tarballs, `SHA256SUMS` (as `sha256sum`
//! writes it) and `provenance.intoto.jsonl`: one DSSE envelope, signed with
//! Ed25519, around an in-toto Statement v1 whose subjects are the tarballs
//! and whose predicate is SLSA provenance v1.

mod attest;
pub mod dsse;
mod files;
pub mod statement;
pub mod sums;
mod verify;

pub use attest::{BuildFacts, attest};
pub use verify::{Verified, verify};

/// The checksum file of a release directory.
pub const SUMS_FILE: &str = "SHA256SUMS";
/// The signed provenance of a release directory: one DSSE envelope on one
/// line (the `.intoto.jsonl` convention of SLSA provenance files).
pub const PROVENANCE_FILE: &str = "provenance.intoto.jsonl";
/// What a release artifact's file name ends with.
pub const TARBALL_SUFFIX: &str = ".tar.gz";
