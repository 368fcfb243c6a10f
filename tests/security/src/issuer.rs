//! The gate's OIDC issuer: one RSA key, its JWKS for the services, and
//! tokens signed with it for the attack suite and schemathesis.

use std::path::Path;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::{Generate, PrivateKey};
use serde_json::{Value, json};

/// The `kid` of the issuer's only key.
pub const KEY_ID: &str = "pecr-gate-key";

const PRIVATE_KEY_FILE: &str = "issuer.der";
const JWKS_FILE: &str = "jwks.json";

/// Generates a key into `dir`: the private key (PKCS#1 DER, owner-only) and
/// the JWKS the services are given.
pub fn generate(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|err| format!("create {}: {err}", dir.display()))?;
    let private = PrivateKey::try_generate().map_err(|err| format!("RSA key: {err}"))?;
    let der = private
        .to_pkcs1_der()
        .map_err(|err| format!("encode key: {err}"))?;
    let key_path = dir.join(PRIVATE_KEY_FILE);
    std::fs::write(&key_path, der.as_bytes())
        .map_err(|err| format!("write {}: {err}", key_path.display()))?;
    restrict(&key_path)?;
    let encoding = EncodingKey::from_rsa_der(der.as_bytes());
    let mut jwk =
        Jwk::from_encoding_key(&encoding, Algorithm::RS256).map_err(|err| format!("JWK: {err}"))?;
    jwk.common.key_id = Some(KEY_ID.to_owned());
    let jwks = json!({ "keys": [serde_json::to_value(jwk).map_err(|err| err.to_string())?] });
    std::fs::write(dir.join(JWKS_FILE), jwks.to_string())
        .map_err(|err| format!("write JWKS: {err}"))
}

#[cfg(unix)]
fn restrict(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|err| format!("chmod {}: {err}", path.display()))
}

#[cfg(not(unix))]
fn restrict(_path: &Path) -> Result<(), String> {
    Ok(())
}

/// The settings under which gateway and controller accept this issuer's
/// tokens, with the claims [`crate::claims_for`] writes (inline JWKS, so no
/// fetch at start-up).
pub fn service_settings(dir: &Path) -> Result<Vec<(&'static str, String)>, String> {
    let jwks =
        std::fs::read_to_string(dir.join(JWKS_FILE)).map_err(|err| format!("read JWKS: {err}"))?;
    Ok(vec![
        ("PECR_AUTH_MODE", "oidc".to_owned()),
        ("PECR_OIDC_ISSUER", crate::ISSUER.to_owned()),
        ("PECR_OIDC_AUDIENCE", crate::AUDIENCE.to_owned()),
        ("PECR_OIDC_JWKS_JSON", jwks),
        ("PECR_OIDC_TENANT_CLAIM", "tenant".to_owned()),
        ("PECR_OIDC_ROLES_CLAIM", "groups".to_owned()),
        ("PECR_OIDC_ABAC_CLAIMS", "dept".to_owned()),
    ])
}

/// The signing key generated into `dir`.
pub fn load_signing_key(dir: &Path) -> Result<EncodingKey, String> {
    let path = dir.join(PRIVATE_KEY_FILE);
    let der = std::fs::read(&path).map_err(|err| format!("read {}: {err}", path.display()))?;
    Ok(EncodingKey::from_rsa_der(&der))
}

/// `claims` signed with RS256 and the issuer's key id.
pub fn sign(key: &EncodingKey, claims: &Value) -> String {
    jsonwebtoken::encode(&crate::header(), claims, key).unwrap_or_else(|err| panic!("sign: {err}"))
}
