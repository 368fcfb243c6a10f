//! Cases: one request each and what the edge must answer, run in order by
//! [`Edge::check`], which names the case in every assertion it makes.

use std::sync::atomic::Ordering;

use crate::client::{Edge, Reply};
use crate::{invalid, invalid_naming};

/// How a case reaches the edge.
pub enum Call {
    /// POST with a JSON content type and a principal, as [`Edge::post`].
    Post(String, String),
    /// GET with a principal, as [`Edge::get`].
    Get(String),
    /// Any method with only these headers, as [`Edge::send`].
    Send {
        method: &'static str,
        path: String,
        headers: Vec<(&'static str, &'static str)>,
        body: Option<String>,
    },
    /// Bytes on a fresh connection, for requests a client would not send.
    Raw(Vec<u8>),
}

/// One more thing a case's reply must show, beside its status.
pub enum Check {
    Body(String),
    Contains(String),
    Lacks(&'static str),
    EndsWith(String),
    /// The JSON value at a pointer.
    Json(&'static str, serde_json::Value),
    /// Some JSON value at a pointer.
    Has(&'static str),
    /// `content-type: application/json`.
    JsonContentType,
    /// Nothing passed through the gRPC stack.
    NotForwarded,
    /// One pass through the gRPC stack, which ended in this RPC.
    Reached(&'static str),
}

pub struct Case {
    /// Names the case when one of its assertions fails.
    pub name: String,
    pub call: Call,
    pub status: u16,
    pub checks: Vec<Check>,
}

pub fn post(name: impl Into<String>, path: &str, body: &str) -> Case {
    Case::new(name, Call::Post(path.to_owned(), body.to_owned()))
}

pub fn get(name: impl Into<String>, path: &str) -> Case {
    Case::new(name, Call::Get(path.to_owned()))
}

pub fn send(
    name: impl Into<String>,
    method: &'static str,
    path: &str,
    headers: &[(&'static str, &'static str)],
    body: Option<&str>,
) -> Case {
    Case::new(
        name,
        Call::Send {
            method,
            path: path.to_owned(),
            headers: headers.to_vec(),
            body: body.map(str::to_owned),
        },
    )
}

pub fn raw(name: impl Into<String>, request: &[u8]) -> Case {
    Case::new(name, Call::Raw(request.to_owned()))
}

impl Case {
    pub fn new(name: impl Into<String>, call: Call) -> Self {
        Self {
            name: name.into(),
            call,
            status: 200,
            checks: Vec::new(),
        }
    }

    pub fn answers(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    pub fn with(mut self, check: Check) -> Self {
        self.checks.push(check);
        self
    }

    /// The `ERR_INVALID_PARAMS` body with `message`, at `status`.
    pub fn refused(self, status: u16, message: &str) -> Self {
        self.answers(status).with(Check::Body(invalid(message)))
    }

    /// A 400 `ERR_INVALID_PARAMS` with `message` whose `detail` names
    /// `field` (nothing for the body as a whole) and gives `reason`.
    pub fn refused_naming(self, message: &str, field: Option<&str>, reason: &str) -> Self {
        self.answers(400)
            .with(Check::Body(invalid_naming(message, field, reason)))
    }

    /// A 400 for a body that is not JSON: no field, the syntax error's
    /// position as the reason.
    pub fn refused_malformed(self) -> Self {
        let body = invalid_naming("invalid JSON body", None, "malformed JSON: ");
        let prefix = body.trim_end_matches("\"}}").to_owned();
        self.answers(400).with(Check::Contains(prefix))
    }
}

impl Edge {
    /// Sends every case in order and checks its reply, naming the case in
    /// each assertion.
    pub async fn check(&self, cases: Vec<Case>) {
        for case in cases {
            let name = case.name.as_str();
            let calls_before = self.calls.load(Ordering::SeqCst);
            let reply = match case.call {
                Call::Post(path, body) => self.post(&path, &body).await,
                Call::Get(path) => self.get(&path).await,
                Call::Send {
                    method,
                    path,
                    headers,
                    body,
                } => self.send(method, &path, &headers, body.as_deref()).await,
                Call::Raw(request) => Reply::parse(&self.raw(&request).await),
            };
            assert_eq!(reply.status, case.status, "{name}: {}", reply.body);
            for check in case.checks {
                match check {
                    Check::Body(body) => assert_eq!(reply.body, body, "{name}"),
                    Check::Contains(part) => {
                        assert!(reply.body.contains(&part), "{name}: {}", reply.body);
                    }
                    Check::Lacks(part) => {
                        assert!(!reply.body.contains(part), "{name}: {}", reply.body);
                    }
                    Check::EndsWith(end) => {
                        assert!(reply.body.ends_with(&end), "{name}: {}", reply.body);
                    }
                    Check::Json(pointer, value) => {
                        assert_eq!(reply.json().pointer(pointer), Some(&value), "{name}");
                    }
                    Check::Has(pointer) => {
                        assert!(reply.json().pointer(pointer).is_some(), "{name}");
                    }
                    Check::JsonContentType => assert_eq!(
                        reply.headers.get("content-type").map(|v| v.as_bytes()),
                        Some(&b"application/json"[..]),
                        "{name}"
                    ),
                    Check::NotForwarded => assert_eq!(
                        self.calls.load(Ordering::SeqCst),
                        calls_before,
                        "{name}: reached gRPC"
                    ),
                    Check::Reached(rpc) => {
                        assert_eq!(
                            self.calls.load(Ordering::SeqCst),
                            calls_before + 1,
                            "{name}: one pass through the gRPC stack"
                        );
                        assert_eq!(self.recorder.last().rpc, rpc, "{name}");
                    }
                }
            }
        }
    }
}
