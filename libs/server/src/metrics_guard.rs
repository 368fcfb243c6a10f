//! `/metrics` behind the same credentials as the API (`PECR_METRICS_REQUIRE_AUTH`).

use std::sync::Arc;

use pecr_auth::Authenticator;
use tonic::metadata::MetadataMap;

use crate::MetricsGuard;

/// A guard that lets a scrape through only when `auth` accepts its headers;
/// otherwise the answer is the API's own error response (401, or 503 while
/// the OIDC keys cannot be fetched), rendered as the REST edge renders it.
pub fn metrics_guard(auth: Authenticator) -> MetricsGuard {
    Arc::new(move |headers| {
        let auth = auth.clone();
        Box::pin(async move {
            auth.authenticate(&MetadataMap::from_headers(headers))
                .await
                .err()
                .map(pecr_edge::error_response)
        })
    })
}
