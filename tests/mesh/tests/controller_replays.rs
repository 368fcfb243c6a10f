//! Replay visibility and integrity (spec 30 §16 scenarios 34–35, decision 6):
//! bundles are scoped by principal, served by any controller replica, and a
//! bundle whose hash no longer matches does not exist.

use pecr_errors::ErrorCode;
use pecr_mesh_tests::{Mesh, MeshOptions, as_principal, client_for, error_of, run_request};
use pecr_proto::v1;

async fn list(
    client: &mut v1::controller_service_client::ControllerServiceClient<tonic::transport::Channel>,
    principal: &str,
) -> Vec<String> {
    client
        .list_replays(as_principal(principal, v1::ListReplaysRequest::default()))
        .await
        .unwrap_or_else(|status| panic!("list: {status:?}"))
        .into_inner()
        .replays
        .into_iter()
        .map(|meta| meta.run_id)
        .collect()
}

#[tokio::test]
async fn scenario_34_replays_belong_to_their_principal_and_any_replica_serves_them() {
    let mesh = Mesh::start().await;
    let mut client = mesh.client().await;
    let run = client
        .run(run_request("dev", "What is the customer status?", None))
        .await
        .expect("run")
        .into_inner();
    assert!(!run.run_id.is_empty());
    assert_eq!(
        list(&mut client, "dev").await,
        std::slice::from_ref(&run.run_id)
    );
    assert!(list(&mut client, "support").await.is_empty());
    let status = client
        .get_replay(as_principal(
            "support",
            v1::GetReplayRequest {
                run_id: run.run_id.clone(),
            },
        ))
        .await
        .expect_err("not theirs");
    assert_eq!(error_of(&status).code, ErrorCode::ReplayNotFound);
    assert_eq!(error_of(&status).http_status, 404);

    // A second controller process lists and serves what the first wrote.
    let replica = mesh.start_controller(&[]).await;
    let mut other = client_for(&replica).await;
    assert_eq!(
        list(&mut other, "dev").await,
        std::slice::from_ref(&run.run_id)
    );
    let bundle = pecr_mesh_tests::replay(&mut other, "dev", &run.run_id).await;
    assert_eq!(bundle.query, "What is the customer status?");
    assert_eq!(
        bundle.metadata.map(|m| m.principal_id_hash),
        Some("5db1c5e4410a534d9875292f115306a3a6e3ea5f0677032ec9e84f69bf35cda7".to_owned())
    );
    for bad in ["", "../etc/passwd", &"x".repeat(300)] {
        let status = other
            .get_replay(as_principal(
                "dev",
                v1::GetReplayRequest {
                    run_id: bad.to_owned(),
                },
            ))
            .await
            .expect_err("unsafe id");
        assert_eq!(error_of(&status).code, ErrorCode::ReplayNotFound);
    }
}

#[tokio::test]
async fn scenario_35_a_tampered_file_bundle_vanishes() {
    let dir = std::env::temp_dir().join(format!("pecr-replays-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mesh = Mesh::start_with(MeshOptions {
        controller: vec![
            ("PECR_REPLAY_STORE", "file".into()),
            ("PECR_REPLAY_STORE_DIR", dir.display().to_string()),
        ],
        ..MeshOptions::default()
    })
    .await;
    let mut client = mesh.client().await;
    let run = client
        .run(run_request("dev", "smoke", None))
        .await
        .expect("run")
        .into_inner();
    let path = dir.join("replays").join(format!("{}.json", run.run_id));
    let stored = std::fs::read_to_string(&path).expect("bundle file");
    assert!(
        stored.contains("\n  \"metadata\""),
        "pretty-printed: {stored}"
    );
    assert_eq!(
        list(&mut client, "dev").await,
        std::slice::from_ref(&run.run_id)
    );

    // Valid JSON, one value changed: the hash no longer matches.
    let tampered = stored.replace("\"query\": \"smoke\"", "\"query\": \"smoke!\"");
    assert_ne!(tampered, stored);
    std::fs::write(&path, tampered).expect("tamper");
    assert!(list(&mut client, "dev").await.is_empty());
    let status = client
        .get_replay(as_principal(
            "dev",
            v1::GetReplayRequest {
                run_id: run.run_id.clone(),
            },
        ))
        .await
        .expect_err("tampered");
    assert_eq!(error_of(&status).code, ErrorCode::ReplayNotFound);
    let _ = std::fs::remove_dir_all(&dir);
}
