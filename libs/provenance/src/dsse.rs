//! DSSE v1 envelopes: the signature covers the pre-authentication encoding
//! (PAE) of the payload type and the payload, never the JSON around them.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use pecr_signing::{PublicKey, SigningKey};
use serde::{Deserialize, Serialize};

/// The payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";

/// `DSSEv1 SP LEN(type) SP type SP LEN(body) SP body`, lengths as ASCII
/// decimal byte counts.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let head = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    );
    [head.as_bytes(), payload].concat()
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Base64 of the payload bytes.
    pub payload: String,
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    pub signatures: Vec<Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// A hint only, never trusted: the signer's public key in hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub keyid: String,
    /// Base64 of the Ed25519 signature of the PAE.
    pub sig: String,
}

impl Envelope {
    /// `payload` signed with `key`.
    pub fn sign(payload_type: &str, payload: &[u8], key: &SigningKey) -> Self {
        let sig = key.sign_raw(&pae(payload_type, payload));
        Self {
            payload: STANDARD.encode(payload),
            payload_type: payload_type.to_owned(),
            signatures: vec![Signature {
                keyid: key.public_key().to_hex(),
                sig: STANDARD.encode(sig),
            }],
        }
    }

    /// The payload, once a signature by `key` over its PAE checks out.
    pub fn open(&self, key: &PublicKey) -> Result<Vec<u8>, String> {
        let payload = decode(&self.payload)
            .ok_or_else(|| "the envelope's payload is not base64".to_owned())?;
        if self.signatures.is_empty() {
            return Err("the envelope carries no signature".to_owned());
        }
        let message = pae(&self.payload_type, &payload);
        let verified = self.signatures.iter().any(|signature| {
            decode(&signature.sig).is_some_and(|sig| key.verifies_raw(&message, &sig))
        });
        if verified {
            return Ok(payload);
        }
        let signers: Vec<&str> = self
            .signatures
            .iter()
            .map(|s| {
                if s.keyid.is_empty() {
                    "?"
                } else {
                    s.keyid.as_str()
                }
            })
            .collect();
        Err(format!(
            "no signature verifies with the public key {} (the envelope names signer keys: {}); \
             the statement was altered after signing, or it was signed with another key",
            key.to_hex(),
            signers.join(", ")
        ))
    }
}

const STANDARD: GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// DSSE allows standard or URL-safe base64; padding is optional here.
fn decode(text: &str) -> Option<Vec<u8>> {
    let config =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    [alphabet::STANDARD, alphabet::URL_SAFE]
        .iter()
        .find_map(|alphabet| GeneralPurpose::new(alphabet, config).decode(text).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_follows_the_spec_example() {
        // The DSSE protocol document's worked example.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    #[test]
    fn an_envelope_opens_with_its_key_only() {
        let key = SigningKey::generate().expect("key");
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key);
        assert_eq!(envelope.open(key.public_key()), Ok(b"{\"a\":1}".to_vec()));
        let err = envelope
            .open(SigningKey::generate().expect("key").public_key())
            .expect_err("another key");
        assert!(err.contains(&key.public_key().to_hex()), "{err}");
    }

    #[test]
    fn any_change_under_the_signature_is_refused() {
        let key = SigningKey::generate().expect("key");
        let envelope = Envelope::sign(IN_TOTO_PAYLOAD_TYPE, b"{\"a\":1}", &key);
        let mut other_payload = envelope.clone();
        other_payload.payload = STANDARD.encode(b"{\"a\":2}");
        let mut other_type = envelope.clone();
        other_type.payload_type = "application/json".to_owned();
        let mut bad_sig = envelope.clone();
        bad_sig.signatures[0].sig = "not base64!".to_owned();
        let mut no_sig = envelope.clone();
        no_sig.signatures.clear();
        let mut bad_payload = envelope;
        bad_payload.payload = "%%%".to_owned();
        for (case, tampered) in [
            ("payload", other_payload),
            ("type", other_type),
            ("sig", bad_sig),
            ("none", no_sig),
            ("base64", bad_payload),
        ] {
            assert!(tampered.open(key.public_key()).is_err(), "{case}");
        }
    }

    #[test]
    fn url_safe_and_unpadded_base64_are_read() {
        let key = SigningKey::generate().expect("key");
        let payload = [0xfb_u8, 0xff, 0xfe];
        let mut envelope = Envelope::sign("t", &payload, &key);
        envelope.payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        assert_eq!(envelope.open(key.public_key()), Ok(payload.to_vec()));
    }
}
