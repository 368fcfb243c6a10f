//! Ed25519 keys as openssl writes them: the private key that signs (PKCS#8
//! PEM, `openssl genpkey -algorithm ed25519`) and the public key a verifier
//! holds (SubjectPublicKeyInfo PEM, `openssl pkey -pubout`, or its 64 hex
//! digits). Ledger checkpoints (`PECR_LEDGER_SIGNING_KEY_FILE`) and release
//! provenance (`pecr release`) are signed with such keys.

use std::path::Path;

use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the
/// algorithm id 1.3.101.112 and a 32-byte bit string follow.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// An Ed25519 private key that signs.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    public: PublicKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey(public {})", self.public.to_hex())
    }
}

impl SigningKey {
    /// The key in a PKCS#8 PEM file.
    pub fn read(path: &Path) -> Result<Self, String> {
        read_with(path, Self::from_pem)
    }

    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|err| format!("not a PKCS#8 PEM private key: {err}"))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der.secret_pkcs8_der())
            .map_err(|err| format!("not an Ed25519 key: {err}"))?;
        Self::from_pair(pair)
    }

    /// A fresh random key, e.g. for a test.
    pub fn generate() -> Result<Self, String> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|err| format!("cannot generate a key: {err}"))?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|err| format!("not an Ed25519 key: {err}"))?;
        Self::from_pair(pair)
    }

    fn from_pair(pair: Ed25519KeyPair) -> Result<Self, String> {
        let public = PublicKey::from_bytes(pair.public_key().as_ref())?;
        Ok(Self { pair, public })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The hex signature of `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        hex::encode(self.sign_raw(message))
    }

    /// The 64-byte signature of `message`.
    pub fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message).as_ref().to_vec()
    }
}

/// An Ed25519 public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        bytes
            .try_into()
            .map(Self)
            .map_err(|_| format!("an Ed25519 public key has 32 bytes, not {}", bytes.len()))
    }

    /// The key in a SubjectPublicKeyInfo PEM file.
    pub fn read(path: &Path) -> Result<Self, String> {
        read_with(path, Self::from_pem)
    }

    /// The key in a file of either form: PEM, or the 64 hex digits
    /// `to_hex` writes (surrounding whitespace allowed).
    pub fn read_pem_or_hex(path: &Path) -> Result<Self, String> {
        read_with(path, |bytes| {
            let text = String::from_utf8_lossy(bytes);
            let trimmed = text.trim();
            if trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
                Self::from_hex(trimmed)
            } else {
                Self::from_pem(bytes)
            }
        })
    }

    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem)
            .map_err(|err| format!("not a PEM public key: {err}"))?;
        match der.as_ref().strip_prefix(&SPKI_PREFIX) {
            Some(key) => Self::from_bytes(key),
            None => Err("not an Ed25519 public key".to_owned()),
        }
    }

    pub fn from_hex(text: &str) -> Result<Self, String> {
        let bytes = hex::decode(text).map_err(|err| format!("not hex: {err}"))?;
        Self::from_bytes(&bytes)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether `signature_hex` is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature_hex: &str) -> bool {
        hex::decode(signature_hex).is_ok_and(|signature| self.verifies_raw(message, &signature))
    }

    /// Whether `signature` (64 bytes) is this key's signature of `message`.
    pub fn verifies_raw(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// `parse` of a file's bytes; either error names the file.
fn read_with<T>(path: &Path, parse: impl FnOnce(&[u8]) -> Result<T, String>) -> Result<T, String> {
    let bytes =
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    parse(&bytes).map_err(|err| format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(label: &str, der: &[u8]) -> String {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN {label}-----\n{body}\n-----END {label}-----\n")
    }

    fn generated() -> SigningKey {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("generate");
        SigningKey::from_pem(pem("PRIVATE KEY", pkcs8.as_ref()).as_bytes()).expect("key")
    }

    #[test]
    fn a_signature_verifies_with_the_public_key_and_nothing_else() {
        let key = generated();
        let signature = key.sign(b"checkpoint");
        assert!(key.public_key().verifies(b"checkpoint", &signature));
        assert!(!key.public_key().verifies(b"checkpoinT", &signature));
        assert!(!generated().public_key().verifies(b"checkpoint", &signature));
        assert!(!key.public_key().verifies(b"checkpoint", "not hex"));
        let raw = key.sign_raw(b"checkpoint");
        assert_eq!(hex::encode(&raw), signature);
        assert!(key.public_key().verifies_raw(b"checkpoint", &raw));
        assert!(!key.public_key().verifies_raw(b"checkpoint", &raw[1..]));
    }

    #[test]
    fn the_public_key_reads_from_spki_pem_and_hex() {
        let key = generated();
        let spki = [SPKI_PREFIX.as_slice(), &key.public_key().0].concat();
        let from_pem = PublicKey::from_pem(pem("PUBLIC KEY", &spki).as_bytes()).expect("pem");
        assert_eq!(&from_pem, key.public_key());
        let from_hex = PublicKey::from_hex(&key.public_key().to_hex()).expect("hex");
        assert_eq!(&from_hex, key.public_key());
    }

    #[test]
    fn a_public_key_file_holds_pem_or_hex() {
        let key = SigningKey::generate().expect("key");
        let spki = [SPKI_PREFIX.as_slice(), &key.public_key().0].concat();
        let dir = std::env::temp_dir().join(format!("pecr-signing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        for (name, text) in [
            ("pem", pem("PUBLIC KEY", &spki)),
            ("hex", format!("{}\n", key.public_key().to_hex())),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).expect("write");
            let read = PublicKey::read_pem_or_hex(&path).expect(name);
            assert_eq!(&read, key.public_key());
        }
        let err = PublicKey::read_pem_or_hex(&dir.join("missing")).expect_err("no file");
        assert!(err.starts_with("cannot read"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn other_keys_are_refused_with_a_reason() {
        let err = SigningKey::from_pem(b"not a key").expect_err("refused");
        assert!(err.contains("PKCS#8"), "{err}");
        let rsa_like = pem("PUBLIC KEY", &[0x30, 0x03, 0x02, 0x01, 0x00]);
        let err = PublicKey::from_pem(rsa_like.as_bytes()).expect_err("refused");
        assert!(err.contains("Ed25519"), "{err}");
    }
}
