//! The `PECR_OIDC_*` settings of `PECR_AUTH_MODE=oidc` (spec 10 §7.2), shared
//! by the gateway and the controller. Reading them only validates their
//! shape; `pecr-auth` loads the JWKS and verifies tokens.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::{ConfigReader, StartupError};

pub const OIDC_ISSUER: &str = "PECR_OIDC_ISSUER";
pub const OIDC_JWKS_JSON: &str = "PECR_OIDC_JWKS_JSON";
pub const OIDC_JWKS_URL: &str = "PECR_OIDC_JWKS_URL";
pub const OIDC_AUDIENCE: &str = "PECR_OIDC_AUDIENCE";
pub const OIDC_PRINCIPAL_ID_CLAIM: &str = "PECR_OIDC_PRINCIPAL_ID_CLAIM";
pub const OIDC_TENANT_CLAIM: &str = "PECR_OIDC_TENANT_CLAIM";
pub const OIDC_TENANT_ID_STATIC: &str = "PECR_OIDC_TENANT_ID_STATIC";
pub const OIDC_ROLES_CLAIM: &str = "PECR_OIDC_ROLES_CLAIM";
pub const OIDC_ABAC_CLAIMS: &str = "PECR_OIDC_ABAC_CLAIMS";
pub const OIDC_JWKS_TIMEOUT_MS: &str = "PECR_OIDC_JWKS_TIMEOUT_MS";
pub const OIDC_JWKS_REFRESH_TTL_SECS: &str = "PECR_OIDC_JWKS_REFRESH_TTL_SECS";
pub const OIDC_CLOCK_SKEW_SECS: &str = "PECR_OIDC_CLOCK_SKEW_SECS";

/// Where the signing keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// `PECR_OIDC_JWKS_JSON`: fixed keys, never refetched.
    Inline(String),
    /// `PECR_OIDC_JWKS_URL`: fetched at start-up and on an unknown `kid`.
    Url(String),
}

/// Where a principal's tenant comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantSource {
    /// `PECR_OIDC_TENANT_ID_STATIC`: every principal belongs to this tenant.
    Static(String),
    /// `PECR_OIDC_TENANT_CLAIM`: the tenant is this string claim.
    Claim(String),
}

/// Validated OIDC settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcSettings {
    pub issuer: String,
    pub jwks: JwksSource,
    /// Expected `aud`; when None a token carrying any `aud` is refused.
    pub audience: Option<String>,
    pub principal_claim: String,
    pub tenant: TenantSource,
    pub roles_claim: Option<String>,
    /// Trimmed, blanks dropped, sorted, de-duplicated.
    pub abac_claims: Vec<String>,
    pub jwks_timeout: Duration,
    pub jwks_refresh_ttl: Duration,
    pub clock_skew_secs: u64,
}

impl OidcSettings {
    /// Reads every `PECR_OIDC_*` key; a missing issuer is
    /// `ERR_MISSING_CONFIG`, a missing key or tenant source
    /// `ERR_INVALID_CONFIG` (spec 30 §2.3 step 12).
    pub fn read(reader: &mut ConfigReader<'_>) -> Self {
        let issuer = reader.raw(OIDC_ISSUER).unwrap_or_else(|| {
            reader.push_error(StartupError::new(
                "ERR_MISSING_CONFIG",
                format!("{OIDC_ISSUER} is required when PECR_AUTH_MODE=oidc"),
            ));
            String::new()
        });
        let jwks = match (reader.raw(OIDC_JWKS_JSON), reader.raw(OIDC_JWKS_URL)) {
            // The inline set takes precedence (spec 10 §7.2).
            (Some(json), _) => JwksSource::Inline(json),
            (None, Some(url)) => {
                if !url.starts_with("https://") && !url.starts_with("http://") {
                    reader.push_error(StartupError::invalid(format!(
                        "{OIDC_JWKS_URL} must be an https:// or http:// URL (got {url:?})"
                    )));
                }
                JwksSource::Url(url)
            }
            (None, None) => {
                reader.push_error(StartupError::invalid(format!(
                    "PECR_AUTH_MODE=oidc needs {OIDC_JWKS_URL} or {OIDC_JWKS_JSON}"
                )));
                JwksSource::Inline(String::new())
            }
        };
        let tenant = match (
            reader.raw(OIDC_TENANT_ID_STATIC),
            reader.raw(OIDC_TENANT_CLAIM),
        ) {
            (Some(tenant), _) => TenantSource::Static(tenant),
            (None, Some(claim)) => TenantSource::Claim(claim),
            (None, None) => {
                reader.push_error(StartupError::invalid(format!(
                    "PECR_AUTH_MODE=oidc needs {OIDC_TENANT_CLAIM} or {OIDC_TENANT_ID_STATIC}"
                )));
                TenantSource::Static(String::new())
            }
        };
        Self {
            issuer,
            jwks,
            audience: reader.raw(OIDC_AUDIENCE),
            principal_claim: reader.string(OIDC_PRINCIPAL_ID_CLAIM, "sub"),
            tenant,
            roles_claim: reader.raw(OIDC_ROLES_CLAIM),
            abac_claims: claim_list(reader.raw(OIDC_ABAC_CLAIMS).as_deref().unwrap_or("")),
            jwks_timeout: Duration::from_millis(reader.number(
                OIDC_JWKS_TIMEOUT_MS,
                2_000,
                1,
                60_000,
            )),
            jwks_refresh_ttl: Duration::from_secs(reader.number(
                OIDC_JWKS_REFRESH_TTL_SECS,
                300,
                0,
                86_400,
            )),
            clock_skew_secs: reader.number(OIDC_CLOCK_SKEW_SECS, 60, 0, 3_600),
        }
    }
}

/// A comma-separated claim list: trimmed, blanks dropped, sorted, de-duplicated.
pub fn claim_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MapSource;

    fn read(pairs: &[(&str, &str)]) -> Result<OidcSettings, Vec<&'static str>> {
        let source = MapSource::from_pairs(pairs.iter().copied());
        let mut reader = ConfigReader::new(&source);
        let settings = OidcSettings::read(&mut reader);
        reader
            .finish()
            .map(|()| settings)
            .map_err(|errors| errors.0.iter().map(|e| e.code).collect())
    }

    #[test]
    fn defaults_and_precedence() {
        let settings = read(&[
            (OIDC_ISSUER, "https://issuer.example"),
            (OIDC_JWKS_JSON, r#"{"keys":[]}"#),
            (OIDC_JWKS_URL, "http://127.0.0.1:1/jwks"),
            (OIDC_TENANT_ID_STATIC, "local"),
            (OIDC_TENANT_CLAIM, "tenant"),
        ])
        .expect("valid");
        assert_eq!(settings.jwks, JwksSource::Inline(r#"{"keys":[]}"#.into()));
        assert_eq!(settings.tenant, TenantSource::Static("local".into()));
        assert_eq!(settings.principal_claim, "sub");
        assert_eq!(settings.audience, None);
        assert!(settings.abac_claims.is_empty());
        assert_eq!(settings.jwks_timeout, Duration::from_millis(2_000));
        assert_eq!(settings.jwks_refresh_ttl, Duration::from_secs(300));
        assert_eq!(settings.clock_skew_secs, 60);
    }

    #[test]
    fn missing_pieces_have_their_codes() {
        assert_eq!(
            read(&[(OIDC_JWKS_URL, "http://x/jwks"), (OIDC_TENANT_CLAIM, "t")]).err(),
            Some(vec!["ERR_MISSING_CONFIG"])
        );
        assert_eq!(
            read(&[(OIDC_ISSUER, "i"), (OIDC_TENANT_CLAIM, "t")]).err(),
            Some(vec!["ERR_INVALID_CONFIG"])
        );
        assert_eq!(
            read(&[(OIDC_ISSUER, "i"), (OIDC_JWKS_URL, "http://x/jwks")]).err(),
            Some(vec!["ERR_INVALID_CONFIG"])
        );
        assert!(
            read(&[
                (OIDC_ISSUER, "i"),
                (OIDC_JWKS_URL, "https://idp.example/jwks"),
                (OIDC_TENANT_CLAIM, "t"),
            ])
            .is_ok()
        );
        assert_eq!(
            read(&[
                (OIDC_ISSUER, "i"),
                (OIDC_JWKS_URL, "ftp://idp.example/jwks"),
                (OIDC_TENANT_CLAIM, "t"),
            ])
            .err(),
            Some(vec!["ERR_INVALID_CONFIG"])
        );
        assert_eq!(
            read(&[
                (OIDC_ISSUER, "i"),
                (OIDC_JWKS_URL, "http://x/jwks"),
                (OIDC_TENANT_CLAIM, "t"),
                (OIDC_CLOCK_SKEW_SECS, "soon"),
            ])
            .err(),
            Some(vec!["ERR_INVALID_CONFIG"])
        );
    }

    #[test]
    fn abac_claims_are_trimmed_sorted_and_deduplicated() {
        assert_eq!(
            claim_list(" tenant , groups,,tenant , dept "),
            ["dept", "groups", "tenant"]
        );
        assert!(claim_list(" , ").is_empty());
    }
}
