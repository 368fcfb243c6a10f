//! What `verify` recomputes for the checkpoints: each one's signature (with
//! the key the auditor trusts), its document against its columns and hash,
//! its link to the previous one, and its Merkle root against the sealed
//! chain heads of the sessions it covers as they are stored now.

use crate::checkpoint::document::{self, Document};
use crate::checkpoint::merkle::{self, Leaf};
use crate::checkpoint::signing::PublicKey;

use super::checks::Broken;

pub const CHECKPOINTS: &str = "pecr_ledger_checkpoints";
pub const COVERED: &str = "pecr_checkpoint_sessions";

/// The key checkpoint signatures are checked with.
#[derive(Debug, Clone)]
pub enum Trust {
    /// A key given outside the database (`--public-key`, or the public
    /// half of the configured signing key), named by where it came from.
    Key { key: PublicKey, from: String },
    /// The key each checkpoint records: proves the document was not
    /// altered after signing, not who signed it.
    Recorded,
}

impl Trust {
    pub fn describe(&self) -> String {
        match self {
            Self::Key { key, from } => format!("key {} ({from})", key.to_hex()),
            Self::Recorded => {
                "the key each checkpoint records (give --public-key to check without trusting the database)"
                    .to_owned()
            }
        }
    }
}

/// A stored checkpoint as `verify` reads it.
pub struct StoredCheckpoint {
    pub checkpoint_seq: i64,
    pub created_at: String,
    pub prev_checkpoint_hash: String,
    pub merkle_root: String,
    pub session_count: i64,
    pub document: String,
    pub checkpoint_hash: String,
    pub signature: Option<String>,
    pub public_key: Option<String>,
}

/// The sessions a checkpoint covers, as stored now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Covered {
    pub root: String,
    pub count: i64,
}

impl Covered {
    pub fn of(leaves: &[Leaf]) -> Self {
        Self {
            root: merkle::root(leaves),
            count: leaves.len() as i64,
        }
    }
}

/// Walks the checkpoints in order.
#[derive(Debug)]
pub struct CheckpointWalk {
    trust: Trust,
    /// The previous checkpoint: seq and hash. In a ranged check the first
    /// checkpoint's link to the one before the range is not checked.
    last: Option<(i64, String)>,
    whole_ledger: bool,
    signed_seen: bool,
    pub checkpoints: u64,
    pub signed: u64,
    pub unsigned: u64,
}

impl CheckpointWalk {
    pub fn new(trust: Trust, whole_ledger: bool) -> Self {
        Self {
            trust,
            last: None,
            whole_ledger,
            signed_seen: false,
            checkpoints: 0,
            signed: 0,
            unsigned: 0,
        }
    }

    /// The next checkpoint by seq, with the sessions it covers.
    pub fn checkpoint(
        &mut self,
        stored: &StoredCheckpoint,
        covered: &Covered,
    ) -> Result<(), Broken> {
        let fail = |what: String| Broken {
            table: CHECKPOINTS,
            id: stored.checkpoint_seq.to_string(),
            session_id: String::new(),
            what,
        };
        let document = Document::parse(&stored.document).map_err(fail)?;
        self.signature(stored, &document).map_err(fail)?;
        let columns = Document {
            checkpoint_seq: stored.checkpoint_seq,
            created_at: stored.created_at.clone(),
            prev_checkpoint_hash: stored.prev_checkpoint_hash.clone(),
            merkle_root: stored.merkle_root.clone(),
            session_count: stored.session_count,
            public_key: stored.public_key.clone(),
        };
        if columns != document {
            return Err(fail(format!(
                "its columns differ from its document: columns {columns:?}, document {document:?}"
            )));
        }
        let hash = document::checkpoint_hash(&stored.document);
        if hash != stored.checkpoint_hash {
            return Err(fail(format!(
                "checkpoint hash differs: stored {}, document hashes to {hash}",
                stored.checkpoint_hash
            )));
        }
        let expected = match &self.last {
            Some((seq, hash)) => Some((seq + 1, hash.clone())),
            None if self.whole_ledger => Some((1, document::genesis())),
            None => None,
        };
        if let Some((expected_seq, expected_prev)) = expected {
            if document.checkpoint_seq != expected_seq {
                return Err(fail(format!(
                    "follows checkpoint {}: expected checkpoint {expected_seq}; a checkpoint is missing",
                    expected_seq - 1
                )));
            }
            if document.prev_checkpoint_hash != expected_prev {
                return Err(fail(format!(
                    "prev_checkpoint_hash {} differs from the previous checkpoint's hash {expected_prev}",
                    document.prev_checkpoint_hash
                )));
            }
        }
        if (covered.count, covered.root.as_str())
            != (document.session_count, document.merkle_root.as_str())
        {
            return Err(fail(format!(
                "the {} sessions it covers hash to root {}, but it commits to {} sessions with root {}: \
                 a covered session's chain or seal was rewritten, or a session was removed",
                covered.count, covered.root, document.session_count, document.merkle_root
            )));
        }
        self.checkpoints += 1;
        self.last = Some((document.checkpoint_seq, hash));
        Ok(())
    }

    fn signature(&mut self, stored: &StoredCheckpoint, document: &Document) -> Result<(), String> {
        let Some(signature) = &stored.signature else {
            if self.signed_seen {
                return Err(
                    "unsigned, after signed checkpoints: a signed ledger stays signed".into(),
                );
            }
            if stored.public_key.is_some() || document.public_key.is_some() {
                return Err("names a public key but carries no signature".into());
            }
            self.unsigned += 1;
            return Ok(());
        };
        let recorded = stored.public_key.as_deref().unwrap_or_default();
        let key = match &self.trust {
            Trust::Key { key, .. } => {
                if recorded != key.to_hex() {
                    return Err(format!(
                        "signed by key {recorded}, not by the trusted key {}",
                        key.to_hex()
                    ));
                }
                key.clone()
            }
            Trust::Recorded => PublicKey::from_hex(recorded)
                .map_err(|err| format!("recorded public key is not a key: {err}"))?,
        };
        if !key.verifies(stored.document.as_bytes(), signature) {
            return Err(format!(
                "signature does not verify with key {}: the checkpoint was altered after it was signed",
                key.to_hex()
            ));
        }
        self.signed_seen = true;
        self.signed += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::signing::SigningKey;

    const KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIP+uWO3NAk1bzpY+EHYhNdKBaNaIakcBZIddqBpO8oKN\n\
        -----END PRIVATE KEY-----\n";

    fn key() -> SigningKey {
        SigningKey::from_pem(KEY_PEM.as_bytes()).expect("key")
    }

    fn leaves(from: usize) -> Vec<Leaf> {
        (from..from + 3)
            .map(|index| Leaf {
                session_id: format!("s-{index}"),
                chain_head: format!("{index:064x}"),
                chain_length: 4,
            })
            .collect()
    }

    fn checkpoint(
        seq: i64,
        prev: &str,
        leaves: &[Leaf],
        key: Option<&SigningKey>,
    ) -> StoredCheckpoint {
        let document = Document {
            checkpoint_seq: seq,
            created_at: format!("2026-12-06T12:00:0{seq}.000000Z"),
            prev_checkpoint_hash: prev.to_owned(),
            merkle_root: merkle::root(leaves),
            session_count: leaves.len() as i64,
            public_key: key.map(|key| key.public_key().to_hex()),
        };
        let text = document.text();
        StoredCheckpoint {
            checkpoint_seq: seq,
            created_at: document.created_at.clone(),
            prev_checkpoint_hash: document.prev_checkpoint_hash.clone(),
            merkle_root: document.merkle_root.clone(),
            session_count: document.session_count,
            checkpoint_hash: document::checkpoint_hash(&text),
            signature: key.map(|key| key.sign(text.as_bytes())),
            public_key: document.public_key.clone(),
            document: text,
        }
    }

    /// Two signed checkpoints over three sessions each.
    fn two_signed() -> (StoredCheckpoint, StoredCheckpoint) {
        let key = key();
        let first = checkpoint(1, &document::genesis(), &leaves(0), Some(&key));
        let second = checkpoint(2, &first.checkpoint_hash, &leaves(3), Some(&key));
        (first, second)
    }

    fn trusted() -> Trust {
        Trust::Key {
            key: key().public_key().clone(),
            from: "test".into(),
        }
    }

    fn walk(checkpoints: &[&StoredCheckpoint], trust: Trust) -> Result<CheckpointWalk, Broken> {
        let mut walk = CheckpointWalk::new(trust, true);
        for (index, checkpoint) in checkpoints.iter().enumerate() {
            walk.checkpoint(checkpoint, &Covered::of(&leaves(index * 3)))?;
        }
        Ok(walk)
    }

    #[test]
    fn signed_linked_checkpoints_verify_with_the_trusted_key() {
        let (first, second) = two_signed();
        let walk = walk(&[&first, &second], trusted()).expect("verifies");
        assert_eq!((walk.checkpoints, walk.signed, walk.unsigned), (2, 2, 0));
    }

    #[test]
    fn swapped_signatures_are_named_by_the_signature_check() {
        let (mut first, mut second) = two_signed();
        std::mem::swap(&mut first.signature, &mut second.signature);
        let broken = walk(&[&first, &second], Trust::Recorded).expect_err("broken");
        assert_eq!((broken.table, broken.id.as_str()), (CHECKPOINTS, "1"));
        assert!(
            broken.what.starts_with("signature does not verify"),
            "{}",
            broken.what
        );
    }

    #[test]
    fn a_re_signed_checkpoint_is_refused_by_the_trusted_key_only() {
        let (first, _) = two_signed();
        let forger = SigningKey::from_pem(
            b"-----BEGIN PRIVATE KEY-----\n\
              MC4CAQAwBQYDK2VwBCIEIBv3kZ7zNB57qbdFP4NEVkDPhKeOSvVmL+vohEkiE+a+\n\
              -----END PRIVATE KEY-----\n",
        )
        .expect("forger key");
        let forged = checkpoint(1, &document::genesis(), &leaves(0), Some(&forger));
        assert!(walk(&[&forged], Trust::Recorded).is_ok());
        let broken = walk(&[&forged], trusted()).expect_err("broken");
        assert!(
            broken.what.contains("not by the trusted key"),
            "{}",
            broken.what
        );
        assert!(walk(&[&first], trusted()).is_ok());
    }

    #[test]
    fn a_rewritten_covered_session_breaks_the_root() {
        let (first, _) = two_signed();
        let mut rewritten = leaves(0);
        rewritten[1].chain_head = "f".repeat(64);
        let mut walk = CheckpointWalk::new(trusted(), true);
        let broken = walk
            .checkpoint(&first, &Covered::of(&rewritten))
            .expect_err("broken");
        assert!(broken.what.contains("hash to root"), "{}", broken.what);
    }

    #[test]
    fn a_missing_checkpoint_and_an_edited_column_are_named() {
        let (first, second) = two_signed();
        let mut walk_gap = CheckpointWalk::new(trusted(), true);
        let broken = walk_gap
            .checkpoint(&second, &Covered::of(&leaves(3)))
            .expect_err("gap");
        assert!(
            broken.what.contains("expected checkpoint 1"),
            "{}",
            broken.what
        );

        let mut edited = first;
        edited.merkle_root = "0".repeat(64);
        let broken = walk(&[&edited], trusted()).expect_err("column");
        assert!(broken.what.contains("columns differ"), "{}", broken.what);
    }

    #[test]
    fn unsigned_checkpoints_count_as_such_until_one_is_signed() {
        let key = key();
        let first = checkpoint(1, &document::genesis(), &leaves(0), None);
        let second = checkpoint(2, &first.checkpoint_hash, &leaves(3), Some(&key));
        let walk_ok = walk(&[&first, &second], trusted()).expect("verifies");
        assert_eq!((walk_ok.signed, walk_ok.unsigned), (1, 1));

        let signed = checkpoint(1, &document::genesis(), &leaves(0), Some(&key));
        let unsigned = checkpoint(2, &signed.checkpoint_hash, &leaves(3), None);
        let broken = walk(&[&signed, &unsigned], trusted()).expect_err("broken");
        assert!(
            broken.what.contains("a signed ledger stays signed"),
            "{}",
            broken.what
        );
    }
}
