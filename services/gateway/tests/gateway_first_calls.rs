//! `CreateSession` with the session's first calls: they are judged, run and
//! answered as a `CallOperators` batch of the new session would be, and the
//! session and the calls reach the ledger in one write.

mod common;

use common::transport::TRANSPORTS;
use common::*;
use pecr_errors::ErrorCode;
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

/// Over either door: the first calls are judged in order (a denied call
/// spends nothing, the budget runs out), the session and every call reach
/// the ledger in one RecordSession, and the session goes on as any other; a
/// call refused for its params spends nothing either.
#[tokio::test]
async fn a_session_opens_with_its_first_calls_in_one_ledger_write() {
    let mesh = Mesh::start(Policy::Bundle).await;
    let public = json!({"object_id": "public/public_1.txt"});
    for transport in TRANSPORTS {
        let (sessions, calls) = (
            ledger_rpcs(&mesh, "RecordSession").await,
            ledger_rpcs(&mesh, "RecordOperatorCall").await,
        );
        let session = transport
            .open(
                &mesh,
                "support",
                budget(2, 1_048_576),
                &[
                    ("fetch_span", public.clone()),
                    (
                        "fetch_span",
                        json!({"object_id": "restricted/restricted_1.txt"}),
                    ),
                    ("list_versions", public.clone()),
                    ("fetch_span", public.clone()),
                ],
            )
            .await
            .unwrap_or_else(|refusal| panic!("{transport:?}: {refusal:?}"));
        assert!(!session.token.is_empty(), "{transport:?}: a session token");
        let outcomes = &session.outcomes;
        assert_eq!(
            codes(outcomes),
            [
                Ok(()),
                Err((ErrorCode::PolicyDenied, 403)),
                Ok(()),
                Err((ErrorCode::BudgetExceeded, 429)),
            ],
            "{transport:?}"
        );
        assert_eq!(
            outcomes[0].as_ref().ok().map(|result| &result["object_id"]),
            Some(&json!("public/public_1.txt")),
            "{transport:?}"
        );
        assert_no_canary("first call outcomes", &format!("{outcomes:?}"));

        // One RecordSession carried them all; no separate operator-call write.
        assert_eq!(
            ledger_rpcs(&mesh, "RecordSession").await - sessions,
            1,
            "{transport:?}"
        );
        assert_eq!(
            ledger_rpcs(&mesh, "RecordOperatorCall").await - calls,
            0,
            "{transport:?}"
        );
        assert_eq!(
            mesh.counters(&session.session_id).await.0,
            2,
            "{transport:?}"
        );
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
            ],
            "{transport:?}"
        );

        // The session goes on as any other: its budget is spent.
        let refusal = session
            .op(&mesh, "fetch_span", public.clone())
            .await
            .expect_err("the budget is spent");
        assert_eq!(
            refusal.error.code,
            ErrorCode::BudgetExceeded,
            "{transport:?}"
        );

        // A call refused for its params spends nothing, as in any batch.
        let session = transport
            .open(
                &mesh,
                "dev",
                budget(5, 1_048_576),
                &[
                    ("fetch_span", public.clone()),
                    ("fetch_span", json!({"object_id": "../escape"})),
                ],
            )
            .await
            .unwrap_or_else(|refusal| panic!("{transport:?}: {refusal:?}"));
        assert_eq!(
            codes(&session.outcomes),
            [Ok(()), Err((ErrorCode::InvalidParams, 400))],
            "{transport:?}"
        );
        assert_eq!(
            mesh.counters(&session.session_id).await.0,
            1,
            "{transport:?}"
        );
    }
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
