//! Signed checkpoints: every so often (and on demand) a Merkle root over the
//! sealed chain heads of the sessions finalized since the previous
//! checkpoint, linked to it by hash and signed with Ed25519. A database
//! superuser can rewrite a whole session chain consistently; they cannot
//! re-sign the checkpoints that committed to it.

pub mod document;
pub mod merkle;
/// The checkpoint key: Ed25519 in the files openssl writes (`pecr-signing`).
pub use pecr_signing as signing;
mod write;

use std::time::Duration;

pub use write::Checkpointer;

/// Writes a checkpoint every `interval` until the task is dropped; a
/// failure is logged and retried at the next tick.
pub async fn periodically(checkpointer: Checkpointer, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        // A backlog larger than one checkpoint drains in several.
        loop {
            match checkpointer.write().await {
                Ok(Some(checkpoint)) => tracing::info!(
                    checkpoint_seq = checkpoint.checkpoint_seq,
                    sessions = checkpoint.session_count,
                    signed = checkpoint.signed,
                    "ledger checkpoint written"
                ),
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(code = err.code.as_str(), "ledger checkpoint failed");
                    break;
                }
            }
        }
    }
}
