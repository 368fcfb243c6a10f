//! The ledger-backed version store follows the same rules as the
//! in-process one: the shared behavioural suite, run through a real
//! ledger-writer on PostgreSQL (each case in a store of its own).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use pecr_adapters::version_store_suite::{self, Caps, StoreMaker};
use pecr_adapters::{NewVersion, StoreFuture, VersionKey, VersionStore};
use pecr_gateway::{Ledger, LedgerVersionStore, VersionCaps};
use pecr_testkit::{ServiceProcess, TestDatabase, credentials};
use tonic::transport::Channel;

struct InLedger {
    ledger: Ledger,
    next: AtomicU32,
}

impl StoreMaker for InLedger {
    fn make(&self, caps: Caps) -> StoreFuture<'_, Arc<dyn VersionStore>> {
        Box::pin(async move {
            let name = format!("suite_{}", self.next.fetch_add(1, Ordering::Relaxed));
            let caps = VersionCaps {
                max_bytes: caps.max_bytes,
                max_total_bytes: caps.max_total_bytes,
                max_versions_per_object: u32::try_from(caps.max_versions_per_object)
                    .expect("small cap"),
            };
            Ok(
                Arc::new(LedgerVersionStore::new(self.ledger.clone(), &name, caps))
                    as Arc<dyn VersionStore>,
            )
        })
    }
}

async fn ledger_writer(db: &TestDatabase) -> ServiceProcess {
    let mut env = vec![
        ("PECR_DB_URL", db.url()),
        ("PECR_LEDGER_GRPC_ADDR", "127.0.0.1:0".into()),
        ("PECR_LEDGER_HTTP_ADDR", "127.0.0.1:0".into()),
    ];
    env.extend(credentials::ledger_writer_tokens());
    ServiceProcess::start("pecr-ledger-writer", &env).await
}

async fn client(ledger: &ServiceProcess) -> Ledger {
    let channel = Channel::from_shared(ledger.grpc_url())
        .expect("ledger url")
        .connect()
        .await
        .expect("connect ledger-writer");
    Ledger::new(
        channel,
        Some(credentials::LEDGER_GATEWAY_TOKEN),
        Duration::from_secs(10),
    )
}

#[tokio::test]
async fn the_ledger_store_follows_the_rules() {
    let db = TestDatabase::create().await;
    let ledger = ledger_writer(&db).await;
    let maker = InLedger {
        ledger: client(&ledger).await,
        next: AtomicU32::new(0),
    };
    version_store_suite::run_all(&maker).await;
    ledger.stop().await;
}

#[tokio::test]
async fn a_version_too_large_to_send_is_observed_but_not_stored() {
    let db = TestDatabase::create().await;
    let ledger = ledger_writer(&db).await;
    let caps = VersionCaps {
        max_bytes: u64::MAX,
        max_total_bytes: u64::MAX,
        max_versions_per_object: 16,
    };
    let store = LedgerVersionStore::new(client(&ledger).await, "files", caps);
    let key = VersionKey {
        tenant_id: "local".into(),
        principal_id: "dev".into(),
        object_id: "big.txt".into(),
    };
    let small = NewVersion {
        version_id: "small".into(),
        bytes: Arc::new(b"small".to_vec()),
    };
    let big = NewVersion {
        version_id: "big".into(),
        bytes: Arc::new(vec![b'x'; pecr_gateway::MAX_SENT_BYTES as usize + 1]),
    };
    let t1 = "2026-01-01T00:00:00Z";
    let t2 = "2026-02-01T00:00:00Z";
    store.record(&key, Some(t1), &small).await.expect("small");
    let listed = store.record(&key, Some(t2), &big).await.expect("big");
    assert_eq!(listed, ["small"], "the big version's bytes never travel");
    assert_eq!(
        store
            .select(&key, t1)
            .await
            .expect("t1")
            .map(|v| v.version_id),
        Some("small".into())
    );
    assert_eq!(
        store.select(&key, t2).await.expect("t2"),
        None,
        "observed at t2, but without bytes it cannot answer"
    );
    ledger.stop().await;
}
