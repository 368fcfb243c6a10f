//! Parity: the same inputs give the same decision through the embedded
//! engine and through the remote client talking to an OPA-compatible server
//! that evaluates the same bundle.

mod common;

use std::path::PathBuf;

use common::opa_stub::{Mode, OpaStub};
use common::{bundle_dir, embedded, inputs, remote, remote_config, test_bundle_dir};
use pecr_policy::DecisionKey;

async fn assert_parity(bundle: PathBuf) {
    let stub = OpaStub::start(&bundle, Mode::Rego).await;
    let local = embedded(bundle);
    let opa = remote(remote_config(&stub.url));
    assert_eq!(opa.backend(), "opa");
    assert_eq!(opa.bundle_hash(), None);
    assert!(opa.ready().await);

    let corpus = inputs::corpus();
    let (mut allowed, mut denied) = (0, 0);
    for input in &corpus {
        let key = DecisionKey::new("local", "p", "parity");
        let embedded = local.decide(&key, input).await.expect("embedded decision");
        let remote = opa.decide(&key, input).await.expect("remote decision");
        assert_eq!(embedded, remote, "input: {input}");
        if embedded.allow {
            allowed += 1;
        } else {
            denied += 1;
        }
    }
    // The corpus exercises both outcomes, and every input went over HTTP.
    assert!(
        allowed > 20 && denied > 20,
        "{allowed} allowed, {denied} denied"
    );
    assert_eq!(stub.decision_requests(), corpus.len());
}

#[tokio::test]
async fn reference_bundle_embedded_and_remote_agree() {
    assert_parity(bundle_dir()).await;
}

#[tokio::test]
async fn test_bundle_embedded_and_remote_agree() {
    assert_parity(test_bundle_dir()).await;
}
