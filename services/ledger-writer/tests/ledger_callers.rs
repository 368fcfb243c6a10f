//! ledger-writer knows every caller: no credential, a wrong one, or a
//! caller calling outside its grants is refused before anything is read or
//! written. Real binary, real tonic clients, real PostgreSQL.

mod common;

use common::*;
use pecr_errors::{ErrorCode, PecrError};
use pecr_proto::v1;
use pecr_testkit::credentials::{
    LEDGER_AUDITOR_TOKEN, LEDGER_CONTROLLER_TOKEN, LEDGER_GATEWAY_TOKEN,
};
use pecr_testkit::{ServiceProcess, TestDatabase};
use tonic::Code;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

/// Every RPC of LedgerService, from the descriptor set.
fn ledger_rpcs() -> Vec<String> {
    let pool = prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    pool.get_service_by_name(pecr_proto::service_names::LEDGER)
        .expect("LedgerService")
        .methods()
        .map(|method| method.name().to_owned())
        .collect()
}

/// Calls `rpc` with an empty message and optional `authorization`.
async fn call(ledger: &ServiceProcess, rpc: &str, authorization: Option<&str>) -> tonic::Status {
    let channel = Channel::from_shared(ledger.grpc_url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let mut request = tonic::Request::new(());
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().expect("ascii"));
    }
    let path = PathAndQuery::try_from(format!("/{}/{rpc}", pecr_proto::service_names::LEDGER))
        .expect("path");
    match grpc
        .unary::<(), (), _>(request, path, tonic_prost::ProstCodec::default())
        .await
    {
        Ok(_) => tonic::Status::ok(""),
        Err(status) => status,
    }
}

fn pecr(status: &tonic::Status) -> PecrError {
    PecrError::from_status(status).unwrap_or_else(|| panic!("no PECR detail in {status:?}"))
}

#[tokio::test]
async fn every_rpc_refuses_a_caller_without_a_valid_credential() {
    let ledger = start_ledger().await;
    let before = ledger.db.count("pecr_ledger_events").await;
    for rpc in ledger_rpcs() {
        let anonymous = call(&ledger.process, &rpc, None).await;
        assert_eq!(
            anonymous.code(),
            Code::Unauthenticated,
            "{rpc}: {anonymous:?}"
        );
        assert_eq!(pecr(&anonymous).code, ErrorCode::AuthRequired, "{rpc}");
        for wrong in [
            format!("Bearer {}", "x".repeat(48)),
            format!("Bearer {LEDGER_GATEWAY_TOKEN}x"),
            LEDGER_GATEWAY_TOKEN.to_owned(),
        ] {
            let refused = call(&ledger.process, &rpc, Some(&wrong)).await;
            assert_eq!(refused.code(), Code::Unauthenticated, "{rpc} with {wrong}");
        }
    }
    assert_eq!(ledger.db.count("pecr_ledger_events").await, before);
}

#[tokio::test]
async fn each_caller_may_call_only_its_own_rpcs() {
    let ledger = start_ledger().await;
    let gateway_rpcs = [
        "RecordSession",
        "GetSession",
        "GetPolicySnapshot",
        "AppendEvent",
        "RecordOperatorCall",
        "RecordAccessRefusal",
        "RecordFinalize",
        "ResolveVersions",
        "RecordVersion",
        "GetVersions",
    ];
    let controller_rpcs = [
        "StoreReplayBundle",
        "LoadReplayBundle",
        "LoadReplayBundles",
        "ListReplayBundles",
        "PruneReplays",
        "StoreEvaluation",
        "LoadEvaluation",
    ];
    let auditor_rpcs = [
        "ListEvents",
        "GetPolicySnapshot",
        "CreateCheckpoint",
        "VerifyLedger",
    ];
    for rpc in ledger_rpcs() {
        for (token, granted) in [
            (LEDGER_GATEWAY_TOKEN, &gateway_rpcs[..]),
            (LEDGER_CONTROLLER_TOKEN, &controller_rpcs[..]),
            (LEDGER_AUDITOR_TOKEN, &auditor_rpcs[..]),
        ] {
            let status = call(&ledger.process, &rpc, Some(&format!("Bearer {token}"))).await;
            if granted.contains(&rpc.as_str()) {
                // Admitted: the empty request then fails validation, or succeeds.
                assert!(
                    !matches!(
                        status.code(),
                        Code::Unauthenticated | Code::PermissionDenied
                    ),
                    "{rpc} should be open to {token}: {status:?}"
                );
            } else {
                assert_eq!(status.code(), Code::PermissionDenied, "{rpc} as {token}");
                assert_eq!(pecr(&status).code, ErrorCode::PolicyDenied);
                assert!(!status.message().contains(&rpc), "no echo: {status:?}");
            }
        }
    }
}

/// The attack: evidence for a restricted file injected into another
/// principal's session without the gateway. The controller's credential is
/// no better than none.
#[tokio::test]
async fn only_the_gateway_records_operator_calls() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "victim", "dev").await;
    let unit = text_evidence(&session, "restricted/restricted_1.txt", "secret\n");
    let request = v1::RecordOperatorCallRequest {
        session_id: session.session_id.clone(),
        trace_id: session.trace_id.clone(),
        evidence_units: vec![unit],
        events: Vec::new(),
        expected_operator_calls_used: 0,
        expected_bytes_used: 0,
        operator_calls_used: 1,
        bytes_used: 7,
        store_content: false,
    };
    let anonymous = pecr_proto::v1::ledger_service_client::LedgerServiceClient::connect(
        ledger.process.grpc_url(),
    )
    .await
    .expect("connect")
    .record_operator_call(request.clone())
    .await
    .expect_err("anonymous");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let as_controller = ledger
        .controller
        .record_operator_call(request)
        .await
        .expect_err("controller");
    assert_eq!(as_controller.code(), Code::PermissionDenied);
    assert_eq!(ledger.db.count("pecr_evidence_units").await, 0);
    let stored = ledger
        .client
        .get_session(v1::GetSessionRequest {
            session_id: session.session_id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .session
        .expect("session");
    assert!(stored.evidence_unit_ids.is_empty());
    assert_eq!(stored.operator_calls_used, 0);
}

#[tokio::test]
async fn the_gateway_cannot_prune_or_read_replays() {
    let mut ledger = start_ledger().await;
    let status = ledger
        .client
        .prune_replays(v1::PruneReplaysRequest { retention_days: 1 })
        .await
        .expect_err("gateway prune");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = ledger
        .client
        .list_replay_bundles(v1::ListReplayBundlesRequest {
            tenant_id: "local".into(),
            principal_id_hash: "a".repeat(64),
            engine_mode: None,
            limit: 10,
        })
        .await
        .expect_err("gateway list");
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn ledger_writer_does_not_start_without_caller_authentication() {
    let db = TestDatabase::create().await;
    let base = [
        ("PECR_DB_URL", db.url()),
        ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".to_owned()),
        ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".to_owned()),
    ];
    let report = ServiceProcess::run_to_exit("pecr-ledger-writer", &base).await;
    assert_eq!(report.code, Some(1), "{}", report.stderr);
    assert!(
        report
            .stderr
            .contains("STARTUP_ERROR ERR_MISSING_CONFIG: ledger-writer authenticates every caller"),
        "{}",
        report.stderr
    );

    let mut short = base.to_vec();
    short.push(("PECR_LEDGER_GATEWAY_TOKEN", "too-short".to_owned()));
    let report = ServiceProcess::run_to_exit("pecr-ledger-writer", &short).await;
    assert_eq!(report.code, Some(1));
    assert!(
        report
            .stderr
            .contains("PECR_LEDGER_GATEWAY_TOKEN must be at least 32")
    );
    assert!(
        !report.stderr.contains("too-short"),
        "the value is never echoed"
    );

    let mut shared = base.to_vec();
    shared.push(("PECR_LEDGER_GATEWAY_TOKEN", LEDGER_GATEWAY_TOKEN.to_owned()));
    shared.push((
        "PECR_LEDGER_CONTROLLER_TOKEN",
        LEDGER_GATEWAY_TOKEN.to_owned(),
    ));
    let report = ServiceProcess::run_to_exit("pecr-ledger-writer", &shared).await;
    assert_eq!(report.code, Some(1));
    assert!(report.stderr.contains("must differ"), "{}", report.stderr);
    assert!(!report.stderr.contains(LEDGER_GATEWAY_TOKEN));
}

#[tokio::test]
async fn refusals_are_kept_apart_from_the_session_stream() {
    let mut ledger = start_ledger().await;
    let session = record_session(&mut ledger, "owned", "dev").await;
    let events_before = ledger.db.count("pecr_ledger_events").await;
    let refusal = ledger
        .client
        .record_access_refusal(v1::RecordAccessRefusalRequest {
            session_id: session.session_id.clone(),
            principal_id: "mallory".into(),
            tenant_id: "tenant-b".into(),
            reason: "tenant_mismatch".into(),
            action: "fetch_rows".into(),
            request_id: "req-1".into(),
        })
        .await
        .expect("recorded")
        .into_inner();
    assert!(pecr_contracts::ids::parse_ulid(&refusal.refusal_id).is_some());
    assert_eq!(ledger.db.count("pecr_session_access_refusals").await, 1);
    assert_eq!(ledger.db.count("pecr_ledger_events").await, events_before);

    let bad_reason = ledger
        .client
        .record_access_refusal(v1::RecordAccessRefusalRequest {
            session_id: session.session_id.clone(),
            principal_id: "mallory".into(),
            tenant_id: "local".into(),
            reason: "because".into(),
            action: "fetch_rows".into(),
            request_id: "req-2".into(),
        })
        .await
        .expect_err("unknown reason");
    assert_eq!(bad_reason.code(), Code::InvalidArgument);
    let tampered = ledger
        .db
        .client()
        .execute("DELETE FROM pecr_session_access_refusals", &[])
        .await;
    assert!(tampered.is_err(), "refusals are append-only");
}

#[tokio::test]
async fn a_trace_of_another_principal_is_never_joined() {
    let mut ledger = start_ledger().await;
    let first = record_session(&mut ledger, "s-dev", "dev").await;
    assert_eq!(first.trace_id, "trace-s-dev");
    assert_eq!(first.principal_attrs_hash, ATTRS_HASH);

    // Another principal asking for the same trace gets a fresh one.
    let mut request = session_request("s-mallory", "mallory");
    request.trace_id = first.trace_id.clone();
    let other = record_session_request(&mut ledger, request).await;
    assert_ne!(other.trace_id, first.trace_id);
    assert!(pecr_contracts::ids::parse_ulid(&other.trace_id).is_some());

    // The same principal and tenant may reuse its own trace.
    let mut request = session_request("s-dev-2", "dev");
    request.trace_id = first.trace_id.clone();
    let again = record_session_request(&mut ledger, request).await;
    assert_eq!(again.trace_id, first.trace_id);

    // The same principal id in another tenant is another principal.
    let mut request = session_request("s-dev-b", "dev");
    request.trace_id = first.trace_id.clone();
    request.policy_snapshot = Some(snapshot("dev", "tenant-b"));
    let tenant_b = record_session_request(&mut ledger, request).await;
    assert_ne!(tenant_b.trace_id, first.trace_id);
}
