//! A plain HTTP/1.1 client for the admin endpoints and the REST edge.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// An answer: status, content type, response headers and body text.
pub struct HttpAnswer {
    pub status: u16,
    pub content_type: String,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

impl HttpAnswer {
    /// The body parsed as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

/// GETs `url`; panics when the server cannot be reached.
pub async fn http_get(url: &str) -> HttpAnswer {
    http_request("GET", url, &[], None).await
}

/// POSTs `body` as `application/json` with extra `headers`.
pub async fn http_post_json(url: &str, headers: &[(&str, &str)], body: &str) -> HttpAnswer {
    let mut all = vec![("content-type", "application/json")];
    all.extend_from_slice(headers);
    http_request("POST", url, &all, Some(body)).await
}

/// Any request; `headers` are sent as given (none are added).
pub async fn http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> HttpAnswer {
    http_try_request(method, url, headers, body)
        .await
        .unwrap_or_else(|err| panic!("{err}"))
}

/// [`http_request`], with a failed exchange (e.g. a server that answers and
/// closes before the whole body was sent) as an error instead of a panic.
pub async fn http_try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpAnswer, String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = hyper::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.unwrap_or_default().to_owned())))
        .map_err(|err| format!("bad request for {url}: {err}"))?;
    let response = client
        .request(request)
        .await
        .map_err(|err| format!("{method} {url}: {err}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let content_type = headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .map(|collected| String::from_utf8_lossy(&collected.to_bytes()).into_owned())
        .unwrap_or_default();
    Ok(HttpAnswer {
        status,
        content_type,
        headers,
        body,
    })
}
