//! `CallOperators`: a batch is judged call by call in order, runs the
//! admitted calls, and is recorded in one ledger write; a replica whose
//! copy of the session is out of date learns the truth from the ledger's
//! refusal and decides again, so budgets stay exact.

mod common;

use common::*;
use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1::{self, gateway_service_client::GatewayServiceClient};
use serde_json::{Value, json};
use tonic::transport::Channel;

fn op(op_name: &str, params: Value) -> v1::OperatorCall {
    v1::OperatorCall {
        op_name: op_name.into(),
        params: params.to_string(),
    }
}

async fn batch(
    client: &mut GatewayServiceClient<Channel>,
    session: &Session,
    calls: Vec<v1::OperatorCall>,
) -> Result<Vec<Result<Value, PecrError>>, tonic::Status> {
    let request = call(
        &session.principal,
        Some(&session.token),
        v1::CallOperatorsRequest {
            session_id: session.session_id.clone(),
            calls,
        },
    );
    let outcomes = client.call_operators(request).await?.into_inner().outcomes;
    Ok(outcomes.iter().map(outcome).collect())
}

#[tokio::test]
async fn a_batch_is_judged_in_order_and_every_call_is_recorded() {
    let mesh = Mesh::start(Policy::Bundle).await;
    let session = mesh
        .session_with("support", budget(2, 1_048_576), None)
        .await
        .expect("session");
    let public = json!({"object_id": "public/public_1.txt"});
    let outcomes = batch(
        &mut mesh.client(),
        &session,
        vec![
            op("fetch_span", public.clone()),
            op(
                "fetch_span",
                json!({"object_id": "restricted/restricted_1.txt"}),
            ),
            op("no_such_operator", json!({})),
            op("list_versions", public.clone()),
            op("fetch_span", public),
        ],
    )
    .await
    .expect("batch");

    let summary = codes(&outcomes);
    assert_eq!(
        summary,
        [
            Ok(()),
            Err((ErrorCode::PolicyDenied, 403)),
            Err((ErrorCode::InvalidParams, 400)),
            Ok(()),
            // The first and fourth calls spent the budget of two.
            Err((ErrorCode::BudgetExceeded, 429)),
        ]
    );
    assert_eq!(
        outcomes[0]
            .as_ref()
            .ok()
            .and_then(|unit| unit["object_id"].as_str()),
        Some("public/public_1.txt")
    );
    assert_no_canary("batch outcomes", &format!("{outcomes:?}"));

    let (calls, bytes) = mesh.counters(&session.session_id).await;
    assert_eq!(calls, 2);
    let events = mesh.events(&session.trace_id).await;
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .filter(|(kind, _)| kind != "SESSION_CREATED" && kind != "EVIDENCE_EMITTED")
        .map(|(kind, payload)| {
            (
                kind.as_str(),
                payload["op_name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("POLICY_DECISION", "fetch_span"),
            ("OPERATOR_CALL", "fetch_span"),
            ("POLICY_DECISION", "fetch_span"),
            ("OPERATOR_CALL", "fetch_span"),
            ("POLICY_DECISION", "no_such_operator"),
            ("OPERATOR_CALL", "no_such_operator"),
            ("POLICY_DECISION", "list_versions"),
            ("OPERATOR_CALL", "list_versions"),
            ("BUDGET_VIOLATION", "fetch_span"),
        ]
    );
    let successes: Vec<&Value> = events
        .iter()
        .filter(|(kind, payload)| kind == "OPERATOR_CALL" && payload["outcome"] == "success")
        .map(|(_, payload)| payload)
        .collect();
    assert_eq!(
        successes
            .iter()
            .map(|p| p["operator_calls_used"].as_i64())
            .collect::<Vec<_>>(),
        [Some(1), Some(2)]
    );
    assert_eq!(successes[1]["bytes_used"].as_i64(), Some(bytes));
}

#[tokio::test]
async fn a_batch_refused_as_a_whole_returns_nothing() {
    let mesh = Mesh::start(Policy::Test).await;
    let mut session = mesh.session("dev").await;
    session.token = "0".repeat(64);
    let status = batch(
        &mut mesh.client(),
        &session,
        vec![op(
            "fetch_span",
            json!({"object_id": "public/public_1.txt"}),
        )],
    )
    .await
    .expect_err("a wrong token refuses the batch");
    assert_eq!(error(&status).http_status, 401);
    assert_eq!(mesh.counters(&session.session_id).await, (0, 0));
}

#[tokio::test]
async fn a_stale_replica_decides_again_and_the_budget_stays_exact() {
    let mesh = Mesh::start(Policy::Test).await;
    let replica = mesh.start_replica().await;
    let mut replica_client = GatewayServiceClient::new(
        Channel::from_shared(replica.grpc_url())
            .expect("replica url")
            .connect()
            .await
            .expect("connect replica"),
    );
    let session = mesh
        .session_with("dev", budget(3, 1_048_576), None)
        .await
        .expect("session");
    let public = || op("fetch_span", json!({"object_id": "public/public_1.txt"}));
    // The replica learns the session at its first call ...
    let first = batch(&mut replica_client, &session, vec![public()])
        .await
        .expect("replica call");
    assert!(first[0].is_ok(), "{first:?}");
    // ... then the first gateway spends the rest behind its back.
    let spent = batch(&mut mesh.client(), &session, vec![public(), public()])
        .await
        .expect("calls");
    assert!(spent.iter().all(Result::is_ok), "{spent:?}");
    // The replica's copy says one call is left; the ledger refuses that
    // write, the replica reloads, and the call is refused as over budget.
    let late = batch(&mut replica_client, &session, vec![public()])
        .await
        .expect("late call");
    assert_eq!(
        late[0].as_ref().err().map(|e| (e.code, e.http_status)),
        Some((ErrorCode::BudgetExceeded, 429)),
        "{late:?}"
    );
    assert_eq!(mesh.counters(&session.session_id).await.0, 3);
}
