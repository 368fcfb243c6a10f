//! OIDC mode (spec 10 §7.2, spec 30 §3.2): `Authorization: Bearer <jwt>`,
//! RS256 only, key by `kid` from the cached JWKS. A token must carry `iss`,
//! and `aud` when an audience is configured (decision 1). Error messages
//! name claims, never token content.

use std::collections::BTreeSet;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use pecr_config::{OidcSettings, StartupError, TenantSource};
use pecr_errors::{ErrorCode, PecrError};
use serde_json::{Map, Value};
use tonic::metadata::MetadataMap;

use crate::jwks::Jwks;
use crate::{Principal, header};

/// Verifies bearer tokens and maps their claims to a [`Principal`].
pub struct OidcAuth {
    issuer: String,
    claims: ClaimRules,
    validation: Validation,
    jwks: Jwks,
}

/// How verified claims become a principal.
struct ClaimRules {
    principal_claim: String,
    tenant: TenantSource,
    roles_claim: Option<String>,
    abac_claims: Vec<String>,
}

fn invalid(message: impl Into<String>) -> PecrError {
    PecrError::new(ErrorCode::AuthInvalid, message)
}

impl OidcAuth {
    /// Loads the JWKS (start-up errors as in [`crate::Authenticator::from_front_door`]).
    pub async fn new(settings: &OidcSettings) -> Result<Self, StartupError> {
        let jwks = Jwks::load(
            &settings.jwks,
            settings.jwks_timeout,
            settings.jwks_refresh_ttl,
        )
        .await?;
        Ok(Self {
            issuer: settings.issuer.clone(),
            claims: ClaimRules {
                principal_claim: settings.principal_claim.clone(),
                tenant: settings.tenant.clone(),
                roles_claim: settings.roles_claim.clone(),
                abac_claims: settings.abac_claims.clone(),
            },
            validation: validation(settings),
            jwks,
        })
    }

    /// The issuer whose tokens are accepted.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<Principal, PecrError> {
        let authorization = header(metadata, "authorization").ok_or_else(|| {
            PecrError::new(ErrorCode::AuthRequired, "missing Authorization header")
        })?;
        let token = authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
            .ok_or_else(|| invalid("Authorization must be a Bearer token"))?;
        if token.trim().is_empty() {
            return Err(invalid("Bearer token is empty"));
        }
        let claims = self.verify(token).await?;
        self.claims.principal(&claims)
    }

    /// The token's claims once its header, key, signature, `exp`, `iss` and
    /// `aud` all check out.
    async fn verify(&self, token: &str) -> Result<Map<String, Value>, PecrError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed JWT header"))?;
        // Checked before any key is touched: `none`, HS256 and every other
        // algorithm are refused, so a public key can never act as an HMAC secret.
        if header.alg != Algorithm::RS256 {
            return Err(invalid("JWT alg must be RS256"));
        }
        let kid = header.kid.ok_or_else(|| invalid("JWT header has no kid"))?;
        let key = self.jwks.key(&kid).await?;
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &self.validation)
            .map_err(|err| {
                tracing::debug!(
                    event = "auth.jwt_rejected",
                    reason = rejection_reason(err.kind()),
                    "JWT rejected"
                );
                invalid("JWT validation failed")
            })?;
        // jsonwebtoken accepts a float `exp`; the contract wants an integer.
        if !data.claims.get("exp").is_some_and(Value::is_u64) {
            return Err(invalid("JWT validation failed"));
        }
        Ok(data.claims)
    }
}

/// A fixed label for a rejection, so logs never carry token content.
fn rejection_reason(kind: &ErrorKind) -> &'static str {
    match kind {
        ErrorKind::InvalidSignature => "signature",
        ErrorKind::ExpiredSignature => "expired",
        ErrorKind::InvalidIssuer => "issuer",
        ErrorKind::InvalidAudience => "audience",
        ErrorKind::MissingRequiredClaim(_) => "missing_claim",
        ErrorKind::InvalidClaimFormat(_) => "claim_format",
        ErrorKind::InvalidAlgorithm => "algorithm",
        _ => "malformed",
    }
}

/// RS256 only; `exp` required with the skew as leeway, `nbf` unchecked;
/// `iss` required and equal to the issuer; with an audience `aud` required
/// and containing it, without one any `aud` is refused.
fn validation(settings: &OidcSettings) -> Validation {
    let mut validation = Validation::new(Algorithm::RS256);
    validation.leeway = settings.clock_skew_secs;
    validation.validate_exp = true;
    validation.validate_nbf = false;
    validation.validate_aud = true;
    validation.set_issuer(&[settings.issuer.as_str()]);
    let mut required = vec!["exp", "iss"];
    match &settings.audience {
        Some(audience) => {
            validation.set_audience(&[audience.as_str()]);
            required.push("aud");
        }
        // With no expected audience jsonwebtoken refuses any `aud` present.
        None => validation.aud = None,
    }
    validation.set_required_spec_claims(&required);
    validation
}

impl ClaimRules {
    fn principal(&self, claims: &Map<String, Value>) -> Result<Principal, PecrError> {
        let principal_id = required_string(claims, &self.principal_claim)?;
        let tenant_id = match &self.tenant {
            TenantSource::Static(tenant) => tenant.clone(),
            TenantSource::Claim(name) => required_string(claims, name)?,
        };
        let roles = match &self.roles_claim {
            None => Vec::new(),
            Some(name) => roles(claims.get(name)).ok_or_else(|| {
                invalid(format!(
                    "claim `{name}` must be a string or an array of strings"
                ))
            })?,
        };
        Ok(Principal {
            principal_id,
            tenant_id,
            roles,
            attrs_hash: attrs_hash(claims, &self.abac_claims),
        })
    }
}

/// A top-level string claim, trimmed and non-empty; a label (at most 256
/// characters, no control characters) because it is stored and logged.
fn required_string(claims: &Map<String, Value>, name: &str) -> Result<String, PecrError> {
    let value = claims
        .get(name)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "required claim `{name}` is missing or not a string"
            ))
        })?;
    if pecr_contracts::ids::check_label(value, pecr_contracts::ids::LABEL_MAX_LEN).is_err() {
        return Err(invalid(format!(
            "claim `{name}` must be at most 256 characters without control characters"
        )));
    }
    Ok(value.to_owned())
}

/// Roles from a claim: absent → none; a string → that role; an array of
/// strings → trimmed, blanks dropped, sorted, de-duplicated. None for any
/// other shape.
fn roles(claim: Option<&Value>) -> Option<Vec<String>> {
    let names: Vec<&str> = match claim {
        None => Vec::new(),
        Some(Value::String(role)) => vec![role.as_str()],
        Some(Value::Array(items)) => items.iter().map(Value::as_str).collect::<Option<_>>()?,
        Some(_) => return None,
    };
    let names: BTreeSet<&str> = names
        .into_iter()
        .map(str::trim)
        .filter(|role| !role.is_empty())
        .collect();
    let labels = names.iter().all(|role| {
        pecr_contracts::ids::check_label(role, pecr_contracts::ids::LABEL_MAX_LEN).is_ok()
    });
    labels.then(|| names.into_iter().map(str::to_owned).collect())
}

/// `principal_attrs_hash` (spec 10 §7.3): the canonical hash of the object of
/// the configured ABAC claims the token carries, values as they are.
fn attrs_hash(claims: &Map<String, Value>, names: &[String]) -> String {
    let attrs: Map<String, Value> = names
        .iter()
        .filter_map(|name| Some((name.clone(), claims.get(name)?.clone())))
        .collect();
    pecr_contracts::hash_canonical_json(&Value::Object(attrs))
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use jsonwebtoken::jwk::Jwk;
    use jsonwebtoken::{EncodingKey, Header};
    use pecr_config::JwksSource;
    use rsa::pkcs1::{EncodeRsaPrivateKey, EncodeRsaPublicKey};
    use rsa::{Generate, PrivateKey};
    use serde_json::json;

    use super::*;
    use crate::tests::metadata;

    const ISSUER: &str = "https://issuer.example";
    /// Vector V5: the hash of `{"dept":"eng"}`.
    const V5: &str = "f76ac232fe24bf5e21d4289ea46d8592fe4a153b0bfde8475291678cdd27fdbd";

    struct TestKey {
        encoding: EncodingKey,
        jwk: Value,
        public_der: Vec<u8>,
    }

    /// One RSA key for every test (generation takes seconds unoptimised).
    fn test_key() -> &'static TestKey {
        static KEY: OnceLock<TestKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let private = PrivateKey::try_generate().expect("RSA key");
            let der = private.to_pkcs1_der().expect("private DER");
            let encoding = EncodingKey::from_rsa_der(der.as_bytes());
            let mut jwk = Jwk::from_encoding_key(&encoding, Algorithm::RS256).expect("JWK");
            jwk.common.key_id = Some("test-kid".into());
            let public_der = private
                .to_public_key()
                .to_pkcs1_der()
                .expect("public DER")
                .as_bytes()
                .to_vec();
            TestKey {
                encoding,
                jwk: serde_json::to_value(jwk).expect("JWK JSON"),
                public_der,
            }
        })
    }

    fn settings(audience: Option<&str>, tenant: TenantSource) -> OidcSettings {
        OidcSettings {
            issuer: ISSUER.into(),
            jwks: JwksSource::Inline(json!({"keys": [test_key().jwk]}).to_string()),
            audience: audience.map(str::to_owned),
            principal_claim: "sub".into(),
            tenant,
            roles_claim: Some("groups".into()),
            abac_claims: vec!["dept".into()],
            jwks_timeout: Duration::from_secs(1),
            jwks_refresh_ttl: Duration::from_secs(300),
            clock_skew_secs: 0,
        }
    }

    async fn auth(audience: Option<&str>) -> OidcAuth {
        OidcAuth::new(&settings(audience, TenantSource::Claim("tenant_id".into())))
            .await
            .unwrap_or_else(|err| panic!("{err}"))
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
    }

    /// Scenario 19's claims.
    fn claims() -> Value {
        json!({
            "iss": ISSUER,
            "aud": "pecr",
            "sub": "dev",
            "tenant_id": "local",
            "groups": ["support", "dev"],
            "dept": "eng",
            "exp": 2_000_000_000u64,
        })
    }

    fn sign(claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("test-kid".into());
        jsonwebtoken::encode(&header, claims, &test_key().encoding).expect("sign")
    }

    async fn check(auth: &OidcAuth, token: &str) -> Result<Principal, (ErrorCode, String)> {
        let bearer = format!("Bearer {token}");
        auth.authenticate(&metadata(&[("authorization", &bearer)]))
            .await
            .map_err(|err| (err.code, err.message))
    }

    async fn refused(auth: &OidcAuth, claims: &Value) -> String {
        match check(auth, &sign(claims)).await {
            Err((ErrorCode::AuthInvalid, message)) => message,
            other => panic!("expected ERR_AUTH_INVALID for {claims}, got {other:?}"),
        }
    }

    fn without(key: &str) -> Value {
        let mut claims = claims();
        claims.as_object_mut().map(|map| map.remove(key));
        claims
    }

    fn with(key: &str, value: Value) -> Value {
        let mut claims = claims();
        claims[key] = value;
        claims
    }

    #[tokio::test]
    async fn scenario_19_a_valid_token_yields_the_principal() {
        let auth = auth(Some("pecr")).await;
        let principal = check(&auth, &sign(&claims())).await.expect("valid");
        assert_eq!(principal.principal_id, "dev");
        assert_eq!(principal.tenant_id, "local");
        assert_eq!(principal.roles, ["dev", "support"]);
        assert_eq!(principal.attrs_hash, V5);
        let lowercase = auth
            .authenticate(&metadata(&[(
                "authorization",
                &format!("bearer {}", sign(&claims())),
            )]))
            .await;
        assert!(lowercase.is_ok(), "`bearer` is accepted too");
    }

    #[tokio::test]
    async fn scenario_16_header_shape() {
        let auth = auth(Some("pecr")).await;
        let code = |pairs: &'static [(&'static str, &'static str)]| {
            let auth = &auth;
            async move {
                auth.authenticate(&metadata(pairs))
                    .await
                    .err()
                    .map(|e| (e.code, e.message))
            }
        };
        assert_eq!(
            code(&[]).await,
            Some((
                ErrorCode::AuthRequired,
                "missing Authorization header".into()
            ))
        );
        assert_eq!(
            code(&[("authorization", "   ")]).await.map(|e| e.0),
            Some(ErrorCode::AuthRequired)
        );
        assert_eq!(
            code(&[("authorization", "Bearer   ")]).await.map(|e| e.0),
            Some(ErrorCode::AuthInvalid)
        );
        assert_eq!(
            code(&[("authorization", "Basic ZGV2OmRldg==")]).await,
            Some((
                ErrorCode::AuthInvalid,
                "Authorization must be a Bearer token".into()
            ))
        );
        assert_eq!(
            code(&[("authorization", "Bearer not.a.jwt")]).await,
            Some((ErrorCode::AuthInvalid, "malformed JWT header".into()))
        );
    }

    #[tokio::test]
    async fn time_issuer_and_audience_rules() {
        let auth = auth(Some("pecr")).await;
        let expired = with("exp", json!(now() - 10));
        assert_eq!(refused(&auth, &expired).await, "JWT validation failed");
        assert_eq!(
            refused(&auth, &with("exp", json!(2_000_000_000.5))).await,
            "JWT validation failed",
            "a float exp counts as missing"
        );
        assert_eq!(
            refused(&auth, &with("exp", json!("2000000000"))).await,
            "JWT validation failed"
        );
        refused(&auth, &without("exp")).await;
        refused(&auth, &with("iss", json!("https://other.example"))).await;
        // Decision 1: a configured issuer or audience must be present.
        refused(&auth, &without("iss")).await;
        refused(&auth, &without("aud")).await;
        refused(&auth, &with("aud", json!("other"))).await;
        assert!(
            check(&auth, &sign(&with("aud", json!(["other", "pecr"]))))
                .await
                .is_ok(),
            "an aud array containing the audience passes"
        );
        let future_nbf = with("nbf", json!(now() + 3_600));
        assert!(
            check(&auth, &sign(&future_nbf)).await.is_ok(),
            "nbf is not checked"
        );
        let no_audience = self::auth(None).await;
        refused(&no_audience, &claims()).await;
        assert!(check(&no_audience, &sign(&without("aud"))).await.is_ok());
    }

    #[tokio::test]
    async fn the_skew_is_a_leeway_on_exp() {
        let mut lenient = settings(None, TenantSource::Static("local".into()));
        lenient.clock_skew_secs = 120;
        let auth = OidcAuth::new(&lenient).await.expect("auth");
        let recent = json!({"iss": ISSUER, "sub": "dev", "exp": now() - 30});
        assert!(check(&auth, &sign(&recent)).await.is_ok());
        let old = json!({"iss": ISSUER, "sub": "dev", "exp": now() - 600});
        refused(&auth, &old).await;
    }

    #[tokio::test]
    async fn algorithm_confusion_is_refused() {
        let auth = auth(Some("pecr")).await;
        // alg none, unsigned.
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"test-kid"}"#);
        let body = URL_SAFE_NO_PAD.encode(claims().to_string());
        assert_eq!(
            check(&auth, &format!("{none_header}.{body}."))
                .await
                .err()
                .map(|e| e.0),
            Some(ErrorCode::AuthInvalid)
        );
        // HS256 keyed with the RSA public key bytes.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("test-kid".into());
        let secret = EncodingKey::from_secret(&test_key().public_der).expect("HMAC key");
        let forged = jsonwebtoken::encode(&header, &claims(), &secret).expect("sign");
        assert_eq!(
            check(&auth, &forged).await.err(),
            Some((ErrorCode::AuthInvalid, "JWT alg must be RS256".into()))
        );
        // RS256 without a kid, and with an unknown kid.
        let unnamed = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims(),
            &test_key().encoding,
        )
        .expect("sign");
        assert_eq!(
            check(&auth, &unnamed).await.err(),
            Some((ErrorCode::AuthInvalid, "JWT header has no kid".into()))
        );
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("other-kid".into());
        let stranger =
            jsonwebtoken::encode(&header, &claims(), &test_key().encoding).expect("sign");
        assert_eq!(
            check(&auth, &stranger).await.err(),
            Some((ErrorCode::AuthInvalid, "JWT kid not found in JWKS".into()))
        );
        // A tampered payload fails the signature.
        let token = sign(&claims());
        let mut parts: Vec<&str> = token.split('.').collect();
        let tampered_body = URL_SAFE_NO_PAD.encode(with("sub", json!("admin")).to_string());
        parts[1] = &tampered_body;
        refused_token(&auth, &parts.join(".")).await;
    }

    async fn refused_token(auth: &OidcAuth, token: &str) {
        assert_eq!(
            check(auth, token).await.err().map(|e| e.0),
            Some(ErrorCode::AuthInvalid)
        );
    }

    #[tokio::test]
    async fn scenario_17_claim_shapes() {
        let auth = auth(Some("pecr")).await;
        assert_eq!(
            refused(&auth, &without("tenant_id")).await,
            "required claim `tenant_id` is missing or not a string"
        );
        assert_eq!(
            refused(&auth, &with("sub", json!("  "))).await,
            "required claim `sub` is missing or not a string"
        );
        refused(&auth, &with("sub", json!(42))).await;
        refused(&auth, &without("sub")).await;
        assert_eq!(
            refused(&auth, &with("groups", json!(["ok", 1]))).await,
            "claim `groups` must be a string or an array of strings"
        );
        refused(&auth, &with("groups", Value::Null)).await;
        refused(&auth, &with("groups", json!({"a": 1}))).await;
        // Claims are stored and logged: no control characters, no NUL.
        assert_eq!(
            refused(&auth, &with("sub", json!("dev\u{0}"))).await,
            "claim `sub` must be at most 256 characters without control characters"
        );
        refused(&auth, &with("sub", json!("a".repeat(257)))).await;
        refused(&auth, &with("tenant_id", json!("t\n1"))).await;
        refused(&auth, &with("groups", json!(["ok", "b\u{0}"]))).await;
        let roles = |value: Value| {
            let auth = &auth;
            async move {
                check(auth, &sign(&with("groups", value)))
                    .await
                    .map(|p| p.roles)
                    .ok()
            }
        };
        assert_eq!(
            roles(json!(["a", "b", "b", ""])).await,
            Some(vec!["a".to_owned(), "b".to_owned()])
        );
        assert_eq!(
            roles(json!(" admin ")).await,
            Some(vec!["admin".to_owned()])
        );
        assert_eq!(roles(json!("  ")).await, Some(Vec::new()));
        assert_eq!(
            check(&auth, &sign(&without("groups")))
                .await
                .map(|p| p.roles),
            Ok(Vec::new())
        );
        let tenant = check(&auth, &sign(&with("tenant_id", json!(" acme "))))
            .await
            .map(|p| p.tenant_id);
        assert_eq!(tenant, Ok("acme".to_owned()));
    }

    #[tokio::test]
    async fn a_static_tenant_wins_over_the_claim() {
        let auth = OidcAuth::new(&settings(
            Some("pecr"),
            TenantSource::Static("local".into()),
        ))
        .await
        .expect("auth");
        let principal = check(&auth, &sign(&with("tenant_id", json!("acme"))))
            .await
            .expect("valid");
        assert_eq!(principal.tenant_id, "local");
    }

    #[test]
    fn scenario_18_abac_hash_ignores_name_and_member_order() {
        let first: Map<String, Value> =
            serde_json::from_str(r#"{"tenant":"t","groups":["a","b"],"sub":"x"}"#).expect("claims");
        let second: Map<String, Value> =
            serde_json::from_str(r#"{"sub":"x","groups":["a","b"],"tenant":"t"}"#).expect("claims");
        let names = pecr_config::claim_list("tenant,groups");
        let reversed = pecr_config::claim_list("groups, tenant");
        assert_eq!(attrs_hash(&first, &names), attrs_hash(&second, &reversed));
        assert_eq!(
            attrs_hash(&first, &names),
            pecr_contracts::hash_canonical_json(&json!({"groups": ["a", "b"], "tenant": "t"}))
        );
        assert_eq!(attrs_hash(&first, &[]), crate::EMPTY_ATTRS_HASH);
        let absent = vec!["dept".to_owned()];
        assert_eq!(attrs_hash(&first, &absent), crate::EMPTY_ATTRS_HASH);
    }
}
