//! What the document says beyond the messages, so generated clients work as
//! they are: the servers, the security schemes, the `x-pecr-*` headers as
//! parameters and response headers, and an explicit response per error
//! status (generators such as openapi-python-client ignore `default`).

use super::yaml::Node;

/// The HTTP statuses an `ErrorResponse` can carry: the defaults of the
/// error-code table and the statuses services set explicitly (404 unknown
/// ids, 413/415 from the edge, 501 unimplemented, 502 upstream failures).
/// pecr-edge's tests check the table's defaults are all here.
pub const ERROR_STATUSES: [u16; 12] = [400, 401, 403, 404, 413, 415, 429, 500, 501, 502, 503, 504];

/// Security scheme names, as operations list them.
const OIDC_BEARER: &str = "oidcBearer";
const LOCAL_PRINCIPAL: &str = "localPrincipal";
const LOCAL_SECRET: &str = "localSecret";

/// RPCs that read `x-pecr-session-token` (the gateway's operator and
/// finalize calls) and the one that issues it. No proto option says so
/// yet, hence full method names here; the mesh tests exercise each.
const SESSION_TOKEN_REQUIRED_BY: [&str; 3] = [
    "pecr.v1.GatewayService.CallOperator",
    "pecr.v1.GatewayService.CallOperators",
    "pecr.v1.GatewayService.Finalize",
];
const SESSION_TOKEN_ISSUED_BY: &str = "pecr.v1.GatewayService.CreateSession";

/// `servers`: relative, so a document fetched from a service's REST port
/// (`/openapi.json`) points back at that port.
pub fn servers() -> Node {
    Node::Seq(vec![Node::map([
        ("url", Node::str("/")),
        (
            "description",
            Node::str(
                "The REST port of the service that serves the route: the gateway's for \
                 GatewayService, the controller's for ControllerService.",
            ),
        ),
    ])])
}

/// `components.securitySchemes`: a bearer token in OIDC mode; the
/// local-mode headers as API keys.
pub fn security_schemes() -> Node {
    let api_key = |header: &str, description: &str| {
        Node::map([
            ("type", Node::str("apiKey")),
            ("in", Node::str("header")),
            ("name", Node::str(header)),
            ("description", Node::str(description)),
        ])
    };
    Node::map([
        (
            OIDC_BEARER,
            Node::map([
                ("type", Node::str("http")),
                ("scheme", Node::str("bearer")),
                ("bearerFormat", Node::str("JWT")),
                (
                    "description",
                    Node::str("OIDC mode: an access token from the configured issuer."),
                ),
            ]),
        ),
        (
            LOCAL_PRINCIPAL,
            api_key(
                "x-pecr-principal-id",
                "Local mode: the principal the call acts for.",
            ),
        ),
        (
            LOCAL_SECRET,
            api_key(
                "x-pecr-local-auth-secret",
                "Local mode with PECR_LOCAL_AUTH_SHARED_SECRET set: the shared secret.",
            ),
        ),
    ])
}

/// The document-wide `security`: OIDC, or local mode with or without the
/// shared secret.
pub fn security() -> Node {
    let requirement = |names: &[&str]| {
        Node::map(
            names
                .iter()
                .map(|name| (*name, Node::Seq(Vec::new())))
                .collect::<Vec<_>>(),
        )
    };
    Node::Seq(vec![
        requirement(&[OIDC_BEARER]),
        requirement(&[LOCAL_PRINCIPAL, LOCAL_SECRET]),
        requirement(&[LOCAL_PRINCIPAL]),
    ])
}

fn header_parameter(name: &str, required: bool, description: &str) -> Node {
    Node::map([
        ("name", Node::str(name)),
        ("in", Node::str("header")),
        ("required", Node::Bool(required)),
        ("description", Node::str(description)),
        ("schema", Node::map([("type", Node::str("string"))])),
    ])
}

/// The `x-pecr-*` request headers `method` (full name) reads, as
/// parameters. The identity headers repeat the security schemes, for
/// generators that pass only parameters.
pub fn header_parameters(method: &str) -> Vec<Node> {
    let mut parameters = vec![
        header_parameter(
            "x-pecr-principal-id",
            false,
            "Local mode: the principal the call acts for (the localPrincipal scheme).",
        ),
        header_parameter(
            "x-pecr-local-auth-secret",
            false,
            "Local mode with a shared secret: the secret (the localSecret scheme).",
        ),
        header_parameter(
            "x-pecr-request-id",
            false,
            "The caller's request id, logged and passed on; one is made when absent.",
        ),
        header_parameter(
            "x-pecr-trace-id",
            false,
            "The trace id to record the call under; one is made when absent.",
        ),
    ];
    if SESSION_TOKEN_REQUIRED_BY.contains(&method) {
        parameters.push(header_parameter(
            "x-pecr-session-token",
            true,
            "The token CreateSession returned in its x-pecr-session-token header.",
        ));
    }
    parameters
}

/// The RPCs whose answer names the run's trace in `x-pecr-trace-id`.
const TRACE_ID_ANSWERED_BY: [&str; 2] = [
    "pecr.v1.ControllerService.Run",
    "pecr.v1.ControllerService.RunStream",
];

/// The response headers of `method`'s successful answer, if any: the
/// session token CreateSession issues, the trace id of a run.
pub fn response_headers(method: &str) -> Option<Node> {
    let header = |name: &str, description: &str| {
        (
            name.to_owned(),
            Node::map([
                ("description", Node::str(description)),
                ("schema", Node::map([("type", Node::str("string"))])),
            ]),
        )
    };
    if method == SESSION_TOKEN_ISSUED_BY {
        return Some(Node::Map(vec![header(
            "x-pecr-session-token",
            "The session's token, for the x-pecr-session-token header of later calls.",
        )]));
    }
    TRACE_ID_ANSWERED_BY.contains(&method).then(|| {
        Node::Map(vec![header(
            "x-pecr-trace-id",
            "The run's trace id (a ULID), as in the answer's trace_id.",
        )])
    })
}

/// The description of an error status's response.
pub fn error_description(status: u16) -> String {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|code| code.canonical_reason())
        .unwrap_or("Error");
    format!("{reason}: an ErrorResponse whose code has this HTTP status.")
}
