//! A Model Context Protocol client speaking raw JSON-RPC over Streamable
//! HTTP, as an attacker would: every header is the test's choice, and every
//! answer comes back whole (status, headers, the body with its server-sent
//! events) so the gate can record it.

use pecr_testkit::{HttpAnswer, http_request};
use serde_json::{Value, json};

/// The revision the client asks for (one with an `initialize` handshake).
pub const PROTOCOL_VERSION: &str = "2025-06-18";

/// An MCP session opened at `url` (`…/mcp`) with an `authorization` value.
pub struct McpSession {
    pub url: String,
    pub authorization: String,
    /// The transport's session id (`mcp-session-id`); empty when refused.
    pub id: String,
    next_id: u64,
}

impl McpSession {
    /// `initialize` then `notifications/initialized`. The session is
    /// returned even when refused (empty id), with the answer to record.
    pub async fn open(url: &str, authorization: &str) -> (Self, HttpAnswer) {
        let mut session = Self {
            url: url.to_owned(),
            authorization: authorization.to_owned(),
            id: String::new(),
            next_id: 0,
        };
        let answer = session
            .request(
                "initialize",
                json!({
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": "pecr-security-gate", "version": "1"},
                }),
            )
            .await;
        let opened = answer.header("mcp-session-id").unwrap_or_default();
        let refused = messages(&answer)
            .iter()
            .any(|message| message.get("error").is_some());
        if !opened.is_empty() && !refused {
            session.id = opened;
            session
                .send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
                .await;
        }
        (session, answer)
    }

    /// A caller using session `id` without having opened it.
    pub fn join(url: &str, authorization: &str, id: &str) -> Self {
        Self {
            url: url.to_owned(),
            authorization: authorization.to_owned(),
            id: id.to_owned(),
            next_id: 100,
        }
    }

    /// A JSON-RPC request in this session; the answer as the server sent it.
    pub async fn request(&mut self, method: &str, params: Value) -> HttpAnswer {
        self.next_id += 1;
        let body =
            json!({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params});
        self.send(&body).await
    }

    /// `tools/call` of `name` with `arguments`.
    pub async fn call_tool(&mut self, name: &str, arguments: Value) -> HttpAnswer {
        self.request("tools/call", json!({"name": name, "arguments": arguments}))
            .await
    }

    /// Ends the session (HTTP DELETE).
    pub async fn close(&self) -> HttpAnswer {
        let headers = self.headers();
        http_request("DELETE", &self.url, &headers, None).await
    }

    async fn send(&self, body: &Value) -> HttpAnswer {
        let mut headers = self.headers();
        headers.push(("content-type", "application/json"));
        headers.push(("accept", "application/json, text/event-stream"));
        http_request("POST", &self.url, &headers, Some(&body.to_string())).await
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        let mut headers = vec![("authorization", self.authorization.as_str())];
        if !self.id.is_empty() {
            headers.push(("mcp-session-id", self.id.as_str()));
            headers.push(("mcp-protocol-version", PROTOCOL_VERSION));
        }
        headers
    }
}

/// The JSON-RPC messages of an answer: its server-sent events' data, or
/// the body itself when it is plain JSON.
pub fn messages(answer: &HttpAnswer) -> Vec<Value> {
    if answer.content_type.starts_with("text/event-stream") {
        return answer
            .body
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .filter_map(|data| serde_json::from_str(data.trim()).ok())
            .collect();
    }
    serde_json::from_str(&answer.body).into_iter().collect()
}

/// The `result` of the answer's response message (not its notifications).
pub fn result(answer: &HttpAnswer) -> Option<Value> {
    messages(answer)
        .into_iter()
        .find(|message| message.get("id").is_some())
        .and_then(|message| message.get("result").cloned())
}
