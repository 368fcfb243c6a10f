//! The signing keys of the OIDC issuer: loaded once at start-up, looked up
//! by `kid`, and refetched on an unknown `kid` only when the cached set is
//! older than the refresh TTL (spec 10 §7.2 step 4).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, KeyAlgorithm, PublicKeyUse};
use pecr_config::{JwksSource, StartupError};
use pecr_errors::{ErrorCode, PecrError};
use serde_json::Value;

/// A JWKS larger than this is refused; real ones are a few KiB.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Keys by `kid`; `None` marks a key that exists but cannot verify RS256.
type KeyMap = HashMap<String, Option<DecodingKey>>;

struct KeySet {
    keys: KeyMap,
    loaded_at: Instant,
}

/// The cached key set and, for a URL source, how to refetch it.
pub(crate) struct Jwks {
    fetcher: Option<Fetcher>,
    current: RwLock<Arc<KeySet>>,
    /// Serialises refetches so concurrent unknown `kid`s cause one fetch.
    refresh: tokio::sync::Mutex<()>,
    refresh_ttl: Duration,
}

impl Jwks {
    /// Loads the set from `source`; failures are start-up errors.
    pub(crate) async fn load(
        source: &JwksSource,
        timeout: Duration,
        refresh_ttl: Duration,
    ) -> Result<Self, StartupError> {
        let (fetcher, keys) = match source {
            JwksSource::Inline(json) => {
                let keys = parse_key_set(json.as_bytes()).map_err(|_| {
                    StartupError::invalid("PECR_OIDC_JWKS_JSON is not valid JWKS JSON")
                })?;
                (None, keys)
            }
            JwksSource::Url(url) => {
                let fetcher = Fetcher::new(url, timeout)?;
                let keys = fetcher.fetch().await.map_err(|reason| {
                    StartupError::new(
                        "ERR_AUTH_UNAVAILABLE",
                        format!("cannot load the JWKS from PECR_OIDC_JWKS_URL={url}: {reason}"),
                    )
                })?;
                (Some(fetcher), keys)
            }
        };
        Ok(Self {
            fetcher,
            current: RwLock::new(Arc::new(KeySet {
                keys,
                loaded_at: Instant::now(),
            })),
            refresh: tokio::sync::Mutex::new(()),
            refresh_ttl,
        })
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The verification key for `kid`. An unknown `kid` refetches a URL set
    /// older than the TTL; a failed refetch is `ERR_AUTH_UNAVAILABLE`.
    pub(crate) async fn key(&self, kid: &str) -> Result<DecodingKey, PecrError> {
        if let Some(found) = self.snapshot().keys.get(kid) {
            return usable(found);
        }
        let Some(fetcher) = &self.fetcher else {
            return Err(kid_not_found());
        };
        let _refreshing = self.refresh.lock().await;
        // Another request may have refreshed while this one waited.
        let cached = self.snapshot();
        if let Some(found) = cached.keys.get(kid) {
            return usable(found);
        }
        if cached.loaded_at.elapsed() < self.refresh_ttl {
            return Err(kid_not_found());
        }
        let keys = fetcher.fetch().await.map_err(|reason| {
            tracing::warn!(event = "auth.jwks_refresh_failed", reason = %reason, "JWKS refresh failed");
            PecrError::new(ErrorCode::AuthUnavailable, "JWKS refresh failed")
        })?;
        tracing::info!(
            event = "auth.jwks_refreshed",
            keys = keys.len(),
            "JWKS refreshed"
        );
        let found = keys.get(kid).cloned();
        let fresh = Arc::new(KeySet {
            keys,
            loaded_at: Instant::now(),
        });
        match self.current.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        found.map_or_else(|| Err(kid_not_found()), |key| usable(&key))
    }
}

fn kid_not_found() -> PecrError {
    PecrError::new(ErrorCode::AuthInvalid, "JWT kid not found in JWKS")
}

fn usable(entry: &Option<DecodingKey>) -> Result<DecodingKey, PecrError> {
    entry.clone().ok_or_else(|| {
        PecrError::new(
            ErrorCode::AuthInvalid,
            "the JWKS key for this kid is not an RS256 signing key",
        )
    })
}

/// Parses `{"keys":[…]}`. Keys are indexed by `kid` (the first of a `kid`
/// wins); a key that is not an RSA signing key for RS256, or does not
/// parse, is kept as unusable so it can never verify a token. Keys without
/// a `kid` are ignored, since tokens must name theirs.
pub(crate) fn parse_key_set(bytes: &[u8]) -> Result<KeyMap, String> {
    let document: Value =
        serde_json::from_slice(bytes).map_err(|_| "not valid JWKS JSON".to_owned())?;
    let entries = document
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| "not valid JWKS JSON (no keys array)".to_owned())?;
    let mut keys = KeyMap::new();
    for entry in entries {
        let Some(kid) = entry.get("kid").and_then(Value::as_str) else {
            continue;
        };
        if keys.contains_key(kid) {
            continue;
        }
        let key = serde_json::from_value::<Jwk>(entry.clone())
            .ok()
            .and_then(|jwk| rs256_key(&jwk));
        keys.insert(kid.to_owned(), key);
    }
    Ok(keys)
}

/// The key of an RSA JWK usable for RS256 signatures, else None. A JWK
/// that declares another algorithm or use is refused, so a symmetric or
/// encryption key can never verify a token (algorithm confusion).
fn rs256_key(jwk: &Jwk) -> Option<DecodingKey> {
    let AlgorithmParameters::RSA(rsa) = &jwk.algorithm else {
        return None;
    };
    if jwk
        .common
        .key_algorithm
        .is_some_and(|alg| alg != KeyAlgorithm::RS256)
    {
        return None;
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|key_use| *key_use != PublicKeyUse::Signature)
    {
        return None;
    }
    DecodingKey::from_rsa_components(&rsa.n, &rsa.e).ok()
}

/// GET of the JWKS URL (`https://` verified against the system's roots, or
/// `http://` for an in-cluster endpoint), bounded by the configured timeout.
struct Fetcher {
    uri: hyper::Uri,
    timeout: Duration,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
}

impl Fetcher {
    fn new(url: &str, timeout: Duration) -> Result<Self, StartupError> {
        let uri: hyper::Uri = url.parse().map_err(|_| {
            StartupError::invalid(format!("PECR_OIDC_JWKS_URL is not a valid URL ({url:?})"))
        })?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(StartupError::invalid(format!(
                "PECR_OIDC_JWKS_URL must be an https:// or http:// URL with a host ({url:?})"
            )));
        }
        let connector = HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|err| {
                StartupError::invalid(format!("no trusted roots for PECR_OIDC_JWKS_URL: {err}"))
            })?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            uri,
            timeout,
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// The key set, or why it could not be had (no token content involved).
    async fn fetch(&self) -> Result<KeyMap, String> {
        let timeout_ms = self.timeout.as_millis();
        tokio::time::timeout(self.timeout, self.fetch_unbounded())
            .await
            .map_err(|_| format!("timed out after {timeout_ms} ms"))?
    }

    async fn fetch_unbounded(&self) -> Result<KeyMap, String> {
        let request = hyper::Request::get(self.uri.clone())
            .header(hyper::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|err| format!("bad request: {err}"))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| format!("request failed: {err}"))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("HTTP status {}", status.as_u16()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|err| format!("reading the body failed: {err}"))?
            .to_bytes();
        parse_key_set(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    fn rsa_jwk(kid: &str, extra: &[(&str, &str)]) -> Value {
        let mut jwk = serde_json::json!({"kty": "RSA", "kid": kid, "n": RSA_N, "e": "AQAB"});
        for (key, value) in extra {
            jwk[*key] = Value::from(*value);
        }
        jwk
    }

    fn keys(document: &Value) -> KeyMap {
        parse_key_set(document.to_string().as_bytes()).expect("parses")
    }

    #[test]
    fn rsa_signing_keys_are_usable_and_others_are_not() {
        let set = keys(&serde_json::json!({"keys": [
            rsa_jwk("plain", &[]),
            rsa_jwk("rs256", &[("alg", "RS256"), ("use", "sig")]),
            rsa_jwk("rs512", &[("alg", "RS512")]),
            rsa_jwk("enc", &[("use", "enc")]),
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "broken"},
            {"kty": "RSA", "n": RSA_N, "e": "AQAB"},
        ]}));
        let usable: Vec<_> = {
            let mut names: Vec<_> = set
                .iter()
                .filter(|(_, key)| key.is_some())
                .map(|(kid, _)| kid.as_str())
                .collect();
            names.sort_unstable();
            names
        };
        assert_eq!(usable, ["plain", "rs256"]);
        assert_eq!(set.len(), 6, "keys without a kid are ignored");
    }

    #[test]
    fn the_first_key_of_a_kid_wins() {
        let set = keys(&serde_json::json!({"keys": [
            {"kty": "oct", "kid": "k", "k": "c2VjcmV0"},
            rsa_jwk("k", &[]),
        ]}));
        assert!(set.get("k").is_some_and(Option::is_none));
    }

    #[test]
    fn documents_without_a_keys_array_are_refused() {
        assert!(parse_key_set(b"not json").is_err());
        assert!(parse_key_set(b"{\"keys\":{}}").is_err());
        assert!(parse_key_set(b"[]").is_err());
        assert!(parse_key_set(b"{\"keys\":[]}").is_ok_and(|keys| keys.is_empty()));
    }

    #[tokio::test]
    async fn an_inline_set_is_never_refetched() {
        let source =
            JwksSource::Inline(serde_json::json!({"keys": [rsa_jwk("a", &[])]}).to_string());
        let jwks = Jwks::load(&source, Duration::from_secs(1), Duration::ZERO)
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        assert!(jwks.key("a").await.is_ok());
        let missing = jwks.key("b").await.err().map(|e| (e.code, e.message));
        assert_eq!(
            missing,
            Some((ErrorCode::AuthInvalid, "JWT kid not found in JWKS".into()))
        );
    }

    /// A bare HTTP/1.1 JWKS endpoint: answers every request with the
    /// current status and body, counting requests; `None` never answers.
    struct Issuer {
        url: String,
        reply: Arc<std::sync::Mutex<Option<(u16, String)>>>,
        hits: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Issuer {
        async fn start(status: u16, body: Value) -> Self {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let url = format!("http://{}/jwks", listener.local_addr().expect("addr"));
            let reply = Arc::new(std::sync::Mutex::new(Some((status, body.to_string()))));
            let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let (shared, count) = (Arc::clone(&reply), Arc::clone(&hits));
            tokio::spawn(async move {
                while let Ok((mut socket, _)) = listener.accept().await {
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let current = shared.lock().map(|r| r.clone()).unwrap_or_default();
                    tokio::spawn(async move {
                        let mut request = Vec::new();
                        let mut chunk = [0u8; 1024];
                        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => request.extend_from_slice(&chunk[..n]),
                            }
                        }
                        let Some((status, body)) = current else {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        };
                        let response = format!(
                            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                             content-length: {}\r\nconnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = socket.write_all(response.as_bytes()).await;
                    });
                }
            });
            Self { url, reply, hits }
        }

        fn reply(&self, reply: Option<(u16, Value)>) {
            if let Ok(mut current) = self.reply.lock() {
                *current = reply.map(|(status, body)| (status, body.to_string()));
            }
        }

        fn hits(&self) -> usize {
            self.hits.load(std::sync::atomic::Ordering::SeqCst)
        }

        async fn load(&self, ttl: Duration) -> Result<Jwks, StartupError> {
            Jwks::load(
                &JwksSource::Url(self.url.clone()),
                Duration::from_millis(500),
                ttl,
            )
            .await
        }
    }

    fn set(kids: &[&str]) -> Value {
        serde_json::json!({"keys": kids.iter().map(|kid| rsa_jwk(kid, &[])).collect::<Vec<_>>()})
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_only_a_set_older_than_the_ttl() {
        let issuer = Issuer::start(200, set(&["a"])).await;
        let patient = issuer.load(Duration::from_secs(3_600)).await.expect("load");
        assert_eq!(issuer.hits(), 1);
        issuer.reply(Some((200, set(&["a", "b"]))));
        let code = patient.key("b").await.err().map(|e| e.code);
        assert_eq!(code, Some(ErrorCode::AuthInvalid));
        assert_eq!(issuer.hits(), 1, "a young cache is not refetched");

        issuer.reply(Some((200, set(&["a"]))));
        let eager = issuer.load(Duration::ZERO).await.expect("load");
        assert_eq!(issuer.hits(), 2);
        assert!(eager.key("b").await.is_err());
        assert_eq!(
            issuer.hits(),
            3,
            "an old cache is refetched on an unknown kid"
        );
        issuer.reply(Some((200, set(&["a", "b"]))));
        assert!(eager.key("b").await.is_ok(), "the rotated key is found");
        assert!(eager.key("a").await.is_ok());
        assert_eq!(issuer.hits(), 4, "known kids never refetch");
    }

    #[tokio::test]
    async fn a_failed_refetch_is_auth_unavailable() {
        let issuer = Issuer::start(200, set(&["a"])).await;
        let jwks = issuer.load(Duration::ZERO).await.expect("load");
        for reply in [
            Some((500, serde_json::json!({}))),
            Some((200, serde_json::json!({"no": "keys"}))),
            None,
        ] {
            issuer.reply(reply);
            let error = jwks.key("b").await.expect_err("refused");
            assert_eq!(
                (error.code, error.http_status, error.retryable),
                (ErrorCode::AuthUnavailable, 503, true)
            );
        }
        assert!(jwks.key("a").await.is_ok(), "the cached keys remain");
    }

    #[tokio::test]
    async fn start_up_fetch_failures_are_auth_unavailable() {
        let issuer = Issuer::start(404, serde_json::json!({})).await;
        let code = issuer.load(Duration::ZERO).await.err().map(|e| e.code);
        assert_eq!(code, Some("ERR_AUTH_UNAVAILABLE"));
        issuer.reply(None);
        let started = Instant::now();
        let code = issuer.load(Duration::ZERO).await.err().map(|e| e.code);
        assert_eq!(code, Some("ERR_AUTH_UNAVAILABLE"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the timeout applies"
        );
    }

    #[tokio::test]
    async fn an_https_url_speaks_tls_and_never_falls_back_to_plain_http() {
        // The issuer stub speaks plain HTTP: the TLS handshake must fail.
        let issuer = Issuer::start(200, set(&["a"])).await;
        let https = issuer.url.replacen("http://", "https://", 1);
        let code = Jwks::load(
            &JwksSource::Url(https),
            Duration::from_millis(500),
            Duration::ZERO,
        )
        .await
        .err()
        .map(|e| e.code);
        assert_eq!(code, Some("ERR_AUTH_UNAVAILABLE"));
        assert!(issuer.hits() >= 1, "the https client dialled the issuer");
        let other = Jwks::load(
            &JwksSource::Url("ftp://127.0.0.1/jwks".into()),
            Duration::from_millis(500),
            Duration::ZERO,
        )
        .await
        .err()
        .map(|e| e.code);
        assert_eq!(other, Some("ERR_INVALID_CONFIG"));
    }

    #[tokio::test]
    async fn start_up_codes() {
        let bad_inline = Jwks::load(
            &JwksSource::Inline("{".into()),
            Duration::from_secs(1),
            Duration::ZERO,
        )
        .await
        .err()
        .map(|e| e.code);
        assert_eq!(bad_inline, Some("ERR_INVALID_CONFIG"));
        // Nothing listens on port 1 of loopback.
        let unreachable = Jwks::load(
            &JwksSource::Url("http://127.0.0.1:1/jwks".into()),
            Duration::from_millis(500),
            Duration::ZERO,
        )
        .await
        .err()
        .map(|e| e.code);
        assert_eq!(unreachable, Some("ERR_AUTH_UNAVAILABLE"));
    }
}
