//! `CreateSession` with the session's first calls: they are judged, run and
//! answered as a `CallOperators` batch of the new session would be, and the
//! session and the calls reach the ledger in one write.

mod common;

use common::*;
use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1;
use serde_json::{Value, json};

fn op(op_name: &str, params: Value) -> v1::OperatorCall {
    v1::OperatorCall {
        op_name: op_name.into(),
        params: params.to_string(),
    }
}

/// `pecr_ledger_rpcs_total` of one RPC, summed over result codes.
async fn ledger_rpcs(mesh: &Mesh, rpc: &str) -> u64 {
    let answer = pecr_testkit::http_get(&mesh.ledger().http_url("/metrics")).await;
    let label = format!("rpc=\"{rpc}\"");
    answer
        .body
        .lines()
        .filter(|line| line.starts_with("pecr_ledger_rpcs_total{") && line.contains(&label))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn create(
    mesh: &Mesh,
    principal: &str,
    trace_id: Option<&str>,
    budget: v1::Budget,
    calls: Vec<v1::OperatorCall>,
) -> Result<tonic::Response<v1::CreateSessionResponse>, tonic::Status> {
    let mut request = call(
        principal,
        None,
        v1::CreateSessionRequest {
            budget: Some(budget),
            as_of_time: None,
            calls,
        },
    );
    if let Some(trace_id) = trace_id {
        request.metadata_mut().insert(
            "x-pecr-trace-id",
            trace_id.parse().expect("trace id header"),
        );
    }
    mesh.client().create_session(request).await
}

#[tokio::test]
async fn a_session_opens_with_its_first_calls_in_one_ledger_write() {
    let mesh = Mesh::start(Policy::Bundle).await;
    let public = json!({"object_id": "public/public_1.txt"});
    let reply = create(
        &mesh,
        "support",
        None,
        budget(2, 1_048_576),
        vec![
            op("fetch_span", public.clone()),
            op(
                "fetch_span",
                json!({"object_id": "restricted/restricted_1.txt"}),
            ),
            op("list_versions", public.clone()),
            op("fetch_span", public.clone()),
        ],
    )
    .await
    .expect("create session with calls");
    let token = reply
        .metadata()
        .get("x-pecr-session-token")
        .and_then(|value| value.to_str().ok())
        .expect("session token")
        .to_owned();
    let session = reply.into_inner();
    let outcomes: Vec<Result<Value, PecrError>> = session.outcomes.iter().map(outcome).collect();
    let summary = codes(&outcomes);
    assert_eq!(
        summary,
        [
            Ok(()),
            Err((ErrorCode::PolicyDenied, 403)),
            Ok(()),
            Err((ErrorCode::BudgetExceeded, 429)),
        ]
    );
    assert_no_canary("first call outcomes", &format!("{outcomes:?}"));

    // One RecordSession carried them all; no separate operator-call write.
    assert_eq!(ledger_rpcs(&mesh, "RecordSession").await, 1);
    assert_eq!(ledger_rpcs(&mesh, "RecordOperatorCall").await, 0);
    assert_eq!(mesh.counters(&session.session_id).await.0, 2);
    let kinds: Vec<String> = mesh
        .events(&session.trace_id)
        .await
        .into_iter()
        .filter(|(kind, _)| kind != "EVIDENCE_EMITTED")
        .map(|(kind, payload)| format!("{kind} {}", payload["op_name"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        kinds,
        [
            "POLICY_DECISION fetch_span",
            "OPERATOR_CALL fetch_span",
            "POLICY_DECISION fetch_span",
            "OPERATOR_CALL fetch_span",
            "POLICY_DECISION list_versions",
            "OPERATOR_CALL list_versions",
            "BUDGET_VIOLATION fetch_span",
        ]
    );

    // The session goes on as any other: its budget is spent.
    let request = call(
        "support",
        Some(&token),
        v1::CallOperatorRequest {
            op_name: "fetch_span".into(),
            session_id: session.session_id.clone(),
            params: public.to_string(),
        },
    );
    let status = mesh
        .client()
        .call_operator(request)
        .await
        .expect_err("the budget is spent");
    assert_eq!(error(&status).code, ErrorCode::BudgetExceeded);
}

#[tokio::test]
async fn first_calls_in_a_trace_of_another_principal_run_in_the_sessions_own_trace() {
    let mesh = Mesh::start(Policy::Test).await;
    let taken = mesh.session("dev").await.trace_id;
    let reply = create(
        &mesh,
        "support",
        Some(&taken),
        budget(5, 1_048_576),
        vec![op(
            "fetch_span",
            json!({"object_id": "public/public_1.txt"}),
        )],
    )
    .await
    .expect("create session with calls")
    .into_inner();
    assert_ne!(reply.trace_id, taken, "the session got a trace of its own");
    assert!(outcome(&reply.outcomes[0]).is_ok(), "{:?}", reply.outcomes);
    let own = mesh.events(&reply.trace_id).await;
    assert!(
        own.iter()
            .any(|(kind, payload)| kind == "OPERATOR_CALL" && payload["outcome"] == "success"),
        "{own:?}"
    );
    let foreign = mesh.events(&taken).await;
    assert!(
        foreign.iter().all(|(kind, _)| kind != "OPERATOR_CALL"),
        "nothing of support's calls is in dev's trace: {foreign:?}"
    );
    assert_eq!(mesh.counters(&reply.session_id).await.0, 1);
}

#[tokio::test]
async fn malformed_first_calls_open_no_session() {
    let mesh = Mesh::start(Policy::Test).await;
    let public = || op("list_versions", json!({"object_id": "public/public_1.txt"}));
    let cases = [
        (
            (0..17).map(|_| public()).collect::<Vec<_>>(),
            "calls must hold at most 16 calls",
        ),
        (
            vec![public(), op("no_such_operator", json!({}))],
            "invalid calls[1].op_name: not an allowlisted operator",
        ),
        (
            vec![v1::OperatorCall {
                op_name: "search".into(),
                params: "{not json".into(),
            }],
            "calls[0]: invalid JSON body",
        ),
    ];
    for (calls, message) in cases {
        let status = create(&mesh, "dev", None, budget(50, 1_048_576), calls)
            .await
            .expect_err(message);
        let refused = error(&status);
        assert_eq!(
            (refused.code, refused.http_status, refused.message.as_str()),
            (ErrorCode::InvalidParams, 400, message)
        );
    }
    assert_eq!(ledger_rpcs(&mesh, "RecordSession").await, 0);
}

#[tokio::test]
async fn rest_opens_a_session_with_its_first_calls() {
    let mesh = Mesh::start(Policy::Test).await;
    let answer = mesh
        .post(
            "/v1/sessions",
            "dev",
            None,
            &json!({
                "budget": budget_json(5, 1_048_576),
                "calls": [
                    {"op_name": "fetch_span", "params": {"object_id": "public/public_1.txt"}},
                    {"op_name": "fetch_span", "params": {"object_id": "../escape"}},
                ],
            }),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.header("x-pecr-session-token").is_some());
    let body = answer.json();
    let outcomes = body["outcomes"].as_array().expect("outcomes");
    assert_eq!(outcomes.len(), 2, "{body}");
    assert_eq!(
        outcomes[0]["ok"]["result"]["object_id"], "public/public_1.txt",
        "{body}"
    );
    assert_eq!(
        outcomes[1]["error"]["error"]["code"], "ERR_INVALID_PARAMS",
        "{body}"
    );
    // A call refused for its params spends nothing, as in any batch.
    let session_id = body["session_id"].as_str().expect("session id");
    assert_eq!(mesh.counters(session_id).await.0, 1);
}
