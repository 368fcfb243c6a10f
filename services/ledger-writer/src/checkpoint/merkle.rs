//! The Merkle tree a checkpoint commits to: the tree hash of RFC 6962
//! (§2.1), with the leaf/node prefixes that keep a leaf from being passed
//! off as an inner node. Leaves are the canonical JSON of one session's
//! sealed chain head, in session id order.

use sha2::{Digest, Sha256};

use pecr_contracts::canonical_json;
use serde_json::json;

/// One covered session: its id and the chain head sealed at finalize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leaf {
    pub session_id: String,
    pub chain_head: String,
    pub chain_length: i64,
}

impl Leaf {
    /// The leaf's bytes as the tree hashes them.
    fn bytes(&self) -> String {
        canonical_json(&json!({
            "session_id": self.session_id,
            "chain_head": self.chain_head,
            "chain_length": self.chain_length,
        }))
    }
}

fn leaf_hash(leaf: &Leaf) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(leaf.bytes().as_bytes());
    hasher.finalize().into()
}

fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The tree hash over `hashes` (already leaf-hashed): split at the largest
/// power of two below the count, as RFC 6962 does.
fn tree_hash(hashes: &[[u8; 32]]) -> [u8; 32] {
    match hashes {
        [] => Sha256::digest([]).into(),
        [only] => *only,
        _ => {
            // The largest power of two strictly below the count.
            let split = hashes.len().div_ceil(2).next_power_of_two();
            node_hash(&tree_hash(&hashes[..split]), &tree_hash(&hashes[split..]))
        }
    }
}

/// The hex Merkle root over `leaves` in the order given.
pub fn root(leaves: &[Leaf]) -> String {
    let hashes: Vec<[u8; 32]> = leaves.iter().map(leaf_hash).collect();
    hex(&tree_hash(&hashes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(index: usize) -> Leaf {
        Leaf {
            session_id: format!("s-{index}"),
            chain_head: format!("{index:064x}"),
            chain_length: index as i64 + 1,
        }
    }

    /// The split point of RFC 6962: the largest power of two strictly
    /// below n.
    fn rfc_split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn reference(hashes: &[[u8; 32]]) -> [u8; 32] {
        match hashes.len() {
            0 => Sha256::digest([]).into(),
            1 => hashes[0],
            n => {
                let k = rfc_split(n);
                node_hash(&reference(&hashes[..k]), &reference(&hashes[k..]))
            }
        }
    }

    #[test]
    fn splits_as_rfc_6962_for_every_small_size() {
        for n in 0..40 {
            let hashes: Vec<[u8; 32]> = (0..n).map(|i| leaf_hash(&leaf(i))).collect();
            assert_eq!(tree_hash(&hashes), reference(&hashes), "n = {n}");
        }
    }

    #[test]
    fn a_fixed_vector() {
        let one = leaf(0);
        let expected = {
            let mut hasher = Sha256::new();
            hasher.update([0x00]);
            hasher.update(
                format!(
                    r#"{{"chain_head":"{}","chain_length":1,"session_id":"s-0"}}"#,
                    "0".repeat(64)
                )
                .as_bytes(),
            );
            hex(&hasher.finalize())
        };
        assert_eq!(root(std::slice::from_ref(&one)), expected);
        let two = [leaf(0), leaf(1)];
        assert_eq!(
            root(&two),
            hex(&node_hash(&leaf_hash(&two[0]), &leaf_hash(&two[1])))
        );
    }

    #[test]
    fn any_change_of_a_leaf_or_its_place_changes_the_root() {
        let leaves: Vec<Leaf> = (0..5).map(leaf).collect();
        let base = root(&leaves);
        let mut edited = leaves.clone();
        edited[3].chain_length += 1;
        assert_ne!(root(&edited), base);
        let mut swapped = leaves.clone();
        swapped.swap(1, 2);
        assert_ne!(root(&swapped), base);
        assert_ne!(root(&leaves[..4]), base);
    }
}
