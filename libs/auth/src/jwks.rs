//! The signing keys of the OIDC issuer: loaded once at start-up, looked up
//! by `kid`, and refetched on an unknown `kid` only when the cached set is
//! older than the refresh TTL (spec 10 §7.2 step 4). Refetches are
//! serialised, so concurrent unknown `kid`s share one fetch, and after a
//! failed refetch the next one waits an exponential backoff: a flood of
//! tokens with made-up `kid`s cannot hammer a failing or slow issuer.

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
/// The wait after the first failed refetch; it doubles with each further
/// failure up to [`REFRESH_BACKOFF_CAP`], and a success resets it.
const REFRESH_BACKOFF_BASE: Duration = Duration::from_secs(1);
const REFRESH_BACKOFF_CAP: Duration = Duration::from_secs(60);

/// The time source; tests drive their own.
pub(crate) type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// Refetch failures since the last success, and when the next may run.
#[derive(Default)]
struct RefreshState {
    failures: u32,
    retry_at: Option<Instant>,
}

/// The wait after `failures` consecutive failed refetches (at least one).
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    REFRESH_BACKOFF_BASE
        .saturating_mul(1 << doublings)
        .min(REFRESH_BACKOFF_CAP)
}

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
    /// Serialises refetches so concurrent unknown `kid`s cause one fetch,
    /// and holds the backoff after failures.
    refresh: tokio::sync::Mutex<RefreshState>,
    refresh_ttl: Duration,
    clock: Clock,
}

impl Jwks {
    /// Loads the set from `source`; failures are start-up errors.
    pub(crate) async fn load(
        source: &JwksSource,
        timeout: Duration,
        refresh_ttl: Duration,
    ) -> Result<Self, StartupError> {
        Self::load_with_clock(source, timeout, refresh_ttl, Arc::new(Instant::now)).await
    }

    /// [`Jwks::load`] with the TTL and backoff measured on `clock`.
    pub(crate) async fn load_with_clock(
        source: &JwksSource,
        timeout: Duration,
        refresh_ttl: Duration,
        clock: Clock,
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
                loaded_at: clock(),
            })),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
            refresh_ttl,
            clock,
        })
    }

    fn snapshot(&self) -> Arc<KeySet> {
        match self.current.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The verification key for `kid`. An unknown `kid` refetches a URL set
    /// older than the TTL unless a failed refetch's backoff is still running;
    /// a failed or backed-off refetch is `ERR_AUTH_UNAVAILABLE`.
    pub(crate) async fn key(&self, kid: &str) -> Result<DecodingKey, PecrError> {
        if let Some(found) = self.snapshot().keys.get(kid) {
            return usable(found);
        }
        let Some(fetcher) = &self.fetcher else {
            return Err(kid_not_found());
        };
        let mut state = self.refresh.lock().await;
        // Another request may have refreshed while this one waited.
        let cached = self.snapshot();
        if let Some(found) = cached.keys.get(kid) {
            return usable(found);
        }
        let now = (self.clock)();
        if now.saturating_duration_since(cached.loaded_at) < self.refresh_ttl {
            return Err(kid_not_found());
        }
        if state.retry_at.is_some_and(|at| now < at) {
            return Err(refresh_failed());
        }
        let keys = match fetcher.fetch().await {
            Ok(keys) => keys,
            Err(reason) => {
                state.failures = state.failures.saturating_add(1);
                let wait = backoff(state.failures);
                state.retry_at = Some((self.clock)() + wait);
                tracing::warn!(
                    event = "auth.jwks_refresh_failed",
                    reason = %reason,
                    failures = state.failures,
                    retry_in_ms = wait.as_millis() as u64,
                    "JWKS refresh failed"
                );
                return Err(refresh_failed());
            }
        };
        *state = RefreshState::default();
        tracing::info!(
            event = "auth.jwks_refreshed",
            keys = keys.len(),
            "JWKS refreshed"
        );
        let found = keys.get(kid).cloned();
        let fresh = Arc::new(KeySet {
            keys,
            loaded_at: (self.clock)(),
        });
        match self.current.write() {
            Ok(mut guard) => *guard = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
        found.map_or_else(|| Err(kid_not_found()), |key| usable(&key))
    }
}

fn refresh_failed() -> PecrError {
    PecrError::new(ErrorCode::AuthUnavailable, "JWKS refresh failed")
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

    /// A clock the test moves by hand.
    #[derive(Clone)]
    struct ManualClock(Arc<std::sync::Mutex<Instant>>);

    impl ManualClock {
        fn new() -> Self {
            Self(Arc::new(std::sync::Mutex::new(Instant::now())))
        }

        fn advance(&self, by: Duration) {
            if let Ok(mut now) = self.0.lock() {
                *now += by;
            }
        }

        fn clock(&self) -> Clock {
            let now = Arc::clone(&self.0);
            Arc::new(move || now.lock().map_or_else(|_| Instant::now(), |now| *now))
        }
    }

    impl Issuer {
        async fn load_on(&self, clock: &ManualClock, timeout: Duration) -> Jwks {
            Jwks::load_with_clock(
                &JwksSource::Url(self.url.clone()),
                timeout,
                Duration::ZERO,
                clock.clock(),
            )
            .await
            .unwrap_or_else(|err| panic!("{err}"))
        }
    }

    fn assert_unavailable(result: Result<DecodingKey, PecrError>) {
        let Err(error) = result else {
            panic!("refused expected")
        };
        assert_eq!(
            (error.code, error.http_status, error.retryable),
            (ErrorCode::AuthUnavailable, 503, true)
        );
    }

    #[tokio::test]
    async fn a_failed_refetch_is_auth_unavailable() {
        let issuer = Issuer::start(200, set(&["a"])).await;
        let clock = ManualClock::new();
        let jwks = issuer.load_on(&clock, Duration::from_millis(500)).await;
        for (attempt, reply) in [
            Some((500, serde_json::json!({}))),
            Some((200, serde_json::json!({"no": "keys"}))),
            None,
        ]
        .into_iter()
        .enumerate()
        {
            issuer.reply(reply);
            // Past the backoff the previous failure started.
            clock.advance(REFRESH_BACKOFF_CAP);
            assert_unavailable(jwks.key("b").await);
            assert_eq!(issuer.hits(), attempt + 2, "each failure was a fetch");
        }
        assert!(jwks.key("a").await.is_ok(), "the cached keys remain");
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(backoff(u32::MAX), REFRESH_BACKOFF_CAP);
    }

    #[tokio::test]
    async fn a_flood_of_unknown_kids_does_not_hammer_a_failing_issuer() {
        let issuer = Issuer::start(200, set(&["a"])).await;
        let clock = ManualClock::new();
        let jwks = Arc::new(issuer.load_on(&clock, Duration::from_millis(500)).await);
        assert_eq!(issuer.hits(), 1);
        issuer.reply(Some((503, serde_json::json!({}))));

        // 64 concurrent tokens with made-up kids: one fetch between them.
        let mut flood = tokio::task::JoinSet::new();
        for n in 0..64 {
            let jwks = Arc::clone(&jwks);
            flood.spawn(async move { jwks.key(&format!("random-{n}")).await });
        }
        while let Some(result) = flood.join_next().await {
            assert_unavailable(result.expect("task"));
        }
        assert_eq!(issuer.hits(), 2, "concurrent refreshes share one fetch");
        // More of them during the backoff: no fetch at all.
        for n in 0..64 {
            assert_unavailable(jwks.key(&format!("later-{n}")).await);
        }
        assert_eq!(issuer.hits(), 2, "the backoff holds");

        // Each further failure doubles the wait, up to the cap.
        let mut hits = 2;
        for failures in 1..=8_u32 {
            let wait = backoff(failures);
            clock.advance(wait - Duration::from_millis(1));
            assert_unavailable(jwks.key("random").await);
            assert_eq!(issuer.hits(), hits, "still backing off after {failures}");
            clock.advance(Duration::from_millis(1));
            assert_unavailable(jwks.key("random").await);
            hits += 1;
            assert_eq!(issuer.hits(), hits, "one fetch once {wait:?} passed");
        }

        // A success resets the backoff.
        issuer.reply(Some((200, set(&["a", "b"]))));
        clock.advance(REFRESH_BACKOFF_CAP);
        assert!(jwks.key("b").await.is_ok(), "the issuer is back");
        issuer.reply(Some((503, serde_json::json!({}))));
        assert_unavailable(jwks.key("random").await);
        let after_reset = issuer.hits();
        clock.advance(REFRESH_BACKOFF_BASE);
        assert_unavailable(jwks.key("random").await);
        assert_eq!(issuer.hits(), after_reset + 1, "the wait started over");
    }

    #[tokio::test]
    async fn a_slow_issuer_is_asked_once_by_concurrent_tokens() {
        let issuer = Issuer::start(200, set(&["a"])).await;
        let clock = ManualClock::new();
        let jwks = Arc::new(issuer.load_on(&clock, Duration::from_millis(200)).await);
        issuer.reply(None); // accepts, never answers: every fetch times out
        let mut flood = tokio::task::JoinSet::new();
        for n in 0..32 {
            let jwks = Arc::clone(&jwks);
            flood.spawn(async move { jwks.key(&format!("random-{n}")).await });
        }
        while let Some(result) = flood.join_next().await {
            assert_unavailable(result.expect("task"));
        }
        assert_eq!(issuer.hits(), 2, "one timed-out fetch, then the backoff");
    }

    #[tokio::test]
    async fn start_up_fetch_failures_are_auth_unavailable() {
        let issuer = Issuer::start(404, serde_json::json!({})).await;
        let code = issuer.load(Duration::ZERO).await.err().map(|e| e.code);
        assert_eq!(code, Some("ERR_AUTH_UNAVAILABLE"));
        // A silent issuer, on a paused clock: the load gives up at its
        // 500 ms timeout (the timer rounds up to the next millisecond), not
        // when the issuer hangs up 30 s later.
        issuer.reply(None);
        tokio::time::pause();
        let started = tokio::time::Instant::now();
        let code = issuer.load(Duration::ZERO).await.err().map(|e| e.code);
        assert_eq!(code, Some("ERR_AUTH_UNAVAILABLE"));
        let waited = started.elapsed();
        assert!(
            (Duration::from_millis(500)..=Duration::from_millis(501)).contains(&waited),
            "{waited:?}"
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
