//! The images' health check, `pecr-probe`, against the real services: it
//! passes on each service's `/readyz` while the mesh is ready, fails on the
//! gateway once ledger-writer is gone, and fails where nothing listens.

use std::time::Duration;

use pecr_mesh_tests::Mesh;
use pecr_testkit::{binary_path, eventually};

/// Far beyond the gateway's readiness check of ledger-writer on any machine.
const NOT_READY_WAIT: Duration = Duration::from_secs(30);

/// Runs `pecr-probe PORT`: whether it exited 0, and what it printed.
async fn probe(port: u16) -> (bool, String) {
    let output = tokio::process::Command::new(binary_path("pecr-probe"))
        .arg(port.to_string())
        .output()
        .await
        .expect("run pecr-probe");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text.trim().to_owned())
}

#[tokio::test]
async fn the_image_probe_follows_each_services_readiness() {
    let mesh = Mesh::start().await;
    let gateway_port = mesh.gateway.as_ref().expect("gateway").http_addr.port();
    for (name, port) in [
        ("ledger-writer", mesh.ledger.http_addr.port()),
        ("gateway", gateway_port),
        ("controller", mesh.controller.http_addr.port()),
    ] {
        let (passed, text) = probe(port).await;
        assert!(passed, "{name}: {text}");
        assert_eq!(text, format!("/readyz on port {port}: 200"), "{name}");
    }

    let ledger_port = mesh.ledger.http_addr.port();
    mesh.ledger.stop().await;
    let text = eventually("the gateway's probe fails", NOT_READY_WAIT, || async {
        let (passed, text) = probe(gateway_port).await;
        (!passed).then_some(text)
    })
    .await;
    assert!(
        text.ends_with(&format!("/readyz on port {gateway_port}: 503")),
        "{text}"
    );

    let (passed, text) = probe(ledger_port).await;
    assert!(!passed, "a stopped ledger-writer passed: {text}");
    assert!(text.contains("cannot connect"), "{text}");
}
