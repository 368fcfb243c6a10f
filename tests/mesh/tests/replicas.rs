//! Stateless replicas: two gateways and two controllers behind one
//! ledger-writer and PostgreSQL. What one gateway observed at an
//! `as_of_time`, the other answers (the version store lives in the ledger
//! database), and budgets are spent exactly once across replicas.

use pecr_errors::ErrorCode;
use pecr_mesh_tests::{Replicas, as_principal, error_of, run_request};
use pecr_proto::v1::{self, gateway_service_client::GatewayServiceClient};
use serde_json::{Value, json};
use tonic::transport::Channel;

const T1: &str = "2026-01-01T00:00:00Z";
const T2: &str = "2026-02-01T00:00:00Z";
const FILE: &str = "public/public_1.txt";

struct Session {
    client: GatewayServiceClient<Channel>,
    session_id: String,
    token: String,
}

fn with_token<T>(token: &str, body: T) -> tonic::Request<T> {
    let mut request = as_principal("dev", body);
    request.metadata_mut().insert(
        "x-pecr-session-token",
        token.parse().expect("token metadata"),
    );
    request
}

async fn session(
    mut client: GatewayServiceClient<Channel>,
    calls: u32,
    as_of_time: &str,
) -> Session {
    let response = client
        .create_session(as_principal(
            "dev",
            v1::CreateSessionRequest {
                budget: Some(v1::Budget {
                    max_operator_calls: calls,
                    max_bytes: 1_048_576,
                    max_wallclock_ms: 10_000,
                    max_recursion_depth: 3,
                    max_parallelism: None,
                }),
                as_of_time: Some(as_of_time.to_owned()),
                calls: Vec::new(),
            },
        ))
        .await
        .expect("create session");
    let token = response
        .metadata()
        .get("x-pecr-session-token")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Session {
        client,
        session_id: response.into_inner().session_id,
        token,
    }
}

impl Session {
    /// Another gateway's client for the same session.
    fn on(&self, client: GatewayServiceClient<Channel>) -> Self {
        Self {
            client,
            session_id: self.session_id.clone(),
            token: self.token.clone(),
        }
    }

    async fn op(&mut self, op_name: &str, params: Value) -> Result<Value, tonic::Status> {
        let request = with_token(
            &self.token,
            v1::CallOperatorRequest {
                op_name: op_name.into(),
                session_id: self.session_id.clone(),
                params: params.to_string(),
            },
        );
        let response = self.client.call_operator(request).await?.into_inner();
        Ok(serde_json::from_str(&response.result).unwrap_or(Value::Null))
    }
}

fn version_ids(listed: &Value) -> Vec<String> {
    listed["versions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["version_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn what_one_gateway_observed_the_other_answers() {
    let mesh = Replicas::start(2, &[]).await;
    let (a, b) = (mesh.gateway(0).await, mesh.gateway(1).await);
    let original = std::fs::read_to_string(mesh.corpus.join(FILE)).expect("fixture");
    let row = json!({"view_id": "safe_customer_view_public", "fields": ["status"], "filter_spec": {"customer_id": "cust_public_1"}});

    // Gateway A observes the file and the row at T1.
    let mut on_a = session(a.clone(), 20, T1).await;
    let listed_a = on_a
        .op("list_versions", json!({"object_id": FILE}))
        .await
        .expect("list on A");
    let v1 = version_ids(&listed_a);
    assert_eq!(v1.len(), 1, "{listed_a}");
    let span_a = on_a
        .op("fetch_span", json!({"object_id": FILE}))
        .await
        .expect("span on A");
    assert_eq!(span_a["content"], json!(original));
    let row_a = on_a.op("fetch_rows", row.clone()).await.expect("row on A");
    assert_eq!(row_a[0]["content"]["status"], "active");

    // Both sources change.
    std::fs::write(
        mesh.corpus.join(FILE),
        format!("{original}REPLICA_MARKER_V2\n"),
    )
    .expect("modify file");
    mesh.db
        .client()
        .batch_execute(
            "UPDATE pecr_fixture_customers SET status = 'REPLICA_ROW_MARKER', \
             updated_at = '2026-02-01T00:00:00Z' WHERE customer_id = 'cust_public_1'",
        )
        .await
        .expect("update row");

    // Gateway B, a new session at T1: what A observed, not the live sources.
    let mut on_b = session(b.clone(), 20, T1).await;
    let span_b = on_b
        .op("fetch_span", json!({"object_id": FILE}))
        .await
        .expect("span on B");
    assert_eq!(
        (&span_b["content"], &span_b["version_id"]),
        (&span_a["content"], &span_a["version_id"]),
        "B answers T1 with what A observed"
    );
    let row_b = on_b.op("fetch_rows", row.clone()).await.expect("row on B");
    assert_eq!(
        (&row_b[0]["content"], &row_b[0]["version_id"]),
        (&row_a[0]["content"], &row_a[0]["version_id"])
    );

    // At T2, B sees the live sources and records them for A.
    let mut later_b = session(b.clone(), 20, T2).await;
    let span_t2 = later_b
        .op("fetch_span", json!({"object_id": FILE}))
        .await
        .expect("T2 span on B");
    assert!(
        span_t2["content"]
            .as_str()
            .unwrap_or_default()
            .contains("REPLICA_MARKER_V2")
    );
    let row_t2 = later_b.op("fetch_rows", row.clone()).await.expect("T2 row");
    assert_eq!(row_t2[0]["content"]["status"], "REPLICA_ROW_MARKER");
    let mut later_a = session(a.clone(), 20, T2).await;
    let span_t2_a = later_a
        .op("fetch_span", json!({"object_id": FILE}))
        .await
        .expect("T2 span on A");
    assert_eq!(span_t2_a["version_id"], span_t2["version_id"]);

    // Both list the same versions, and either can diff them.
    let listed_on_a = on_a
        .op("list_versions", json!({"object_id": FILE}))
        .await
        .expect("list on A again");
    let listed_on_b = on_b
        .op("list_versions", json!({"object_id": FILE}))
        .await
        .expect("list on B");
    assert_eq!(listed_on_a, listed_on_b);
    assert_eq!(version_ids(&listed_on_b).len(), 2, "{listed_on_b}");
    assert!(version_ids(&listed_on_b).contains(&v1[0]));
    let v2 = span_t2["version_id"].as_str().expect("v2").to_owned();
    let diff = on_b
        .op("diff", json!({"object_id": FILE, "v1": v1[0], "v2": v2}))
        .await
        .expect("diff on B");
    assert!(
        diff[0]["content"]
            .as_str()
            .unwrap_or_default()
            .contains("+REPLICA_MARKER_V2"),
        "{diff}"
    );
    mesh.stop().await;
}

#[tokio::test]
async fn budgets_are_exact_across_replicas() {
    const CALLS: u32 = 4;
    let mesh = Replicas::start(2, &[]).await;
    let (a, b) = (mesh.gateway(0).await, mesh.gateway(1).await);

    // One session, its calls raced through both gateways; lost races retry.
    let opened = session(a.clone(), CALLS, T1).await;
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let mut caller = opened.on(if i % 2 == 0 { a.clone() } else { b.clone() });
            tokio::spawn(async move {
                let mut spent = 0;
                loop {
                    match caller.op("fetch_span", json!({"object_id": FILE})).await {
                        Ok(_) => spent += 1,
                        Err(status) => {
                            let err = error_of(&status);
                            match (err.code, err.http_status) {
                                (ErrorCode::BudgetExceeded, 429) => return spent,
                                (ErrorCode::InvalidParams, 409) => assert!(err.retryable),
                                _ => panic!("unexpected failure {err:?}"),
                            }
                        }
                    }
                }
            })
        })
        .collect();
    let mut spent = 0;
    for task in tasks {
        spent += task.await.expect("caller");
    }
    assert_eq!(spent, CALLS, "the budget is spent exactly once");
    let used: i64 = mesh
        .db
        .client()
        .query_one(
            "SELECT operator_calls_used FROM pecr_session_runtime WHERE session_id = $1",
            &[&opened.session_id],
        )
        .await
        .expect("runtime row")
        .get(0);
    assert_eq!(used, i64::from(CALLS));

    // Runs through both controllers give the same answer, each recorded
    // with exactly the calls it made.
    let mut answers = Vec::new();
    for index in [0, 1, 0, 1] {
        let mut controller = mesh.controller(index).await;
        let run = controller
            .run(run_request(
                "dev",
                "What is the customer status and plan tier?",
                None,
            ))
            .await
            .expect("run")
            .into_inner();
        let cited: Vec<(String, String)> = run
            .cited_evidence
            .iter()
            .map(|unit| (unit.object_id.clone(), unit.version_id.clone()))
            .collect();
        answers.push((run.terminal_mode, run.response_text, cited));
        let recorded: (i64, i64) = {
            let row = mesh
                .db
                .client()
                .query_one(
                    "SELECT r.operator_calls_used, \
                            (SELECT count(*) FROM pecr_ledger_events e \
                             WHERE e.trace_id = $1 AND e.event_type = 'OPERATOR_CALL') \
                     FROM pecr_sessions s JOIN pecr_session_runtime r USING (session_id) \
                     WHERE s.trace_id = $1",
                    &[&run.trace_id],
                )
                .await
                .expect("run's session");
            (row.get(0), row.get(1))
        };
        assert!(recorded.0 > 0, "the run made calls");
        assert_eq!(recorded.0, recorded.1, "counted once per call");
    }
    assert!(
        answers.windows(2).all(|pair| pair[0] == pair[1]),
        "{answers:?}"
    );
    assert_eq!(answers[0].0, v1::TerminalMode::Supported as i32);
    mesh.stop().await;
}
