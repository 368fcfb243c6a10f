//! A quick latency check of embedded decisions (no cache): prints p50/p99
//! and bounds p99 loosely, since debug builds and a busy CI box are slow.
//! For real numbers: `cargo test --release -p pecr-policy --test
//! embedded_latency -- --nocapture`.

mod common;

use std::time::{Duration, Instant};

use common::inputs::{create_session, fs_call};
use common::{bundle_dir, embedded};
use pecr_policy::DecisionKey;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_decision_latency() {
    let engine = embedded(bundle_dir());
    let inputs = [
        fs_call("support", "fetch_span", "public/public_1.txt"),
        fs_call("support", "fetch_span", "restricted/restricted_1.txt"),
        fs_call("dev", "fetch_rows", "safe_customer_view_admin"),
        create_session("guest"),
    ];
    let key = DecisionKey::new("local", "support", "operator_call");
    for input in &inputs {
        engine.decide(&key, input).await.expect("warm-up");
    }

    let rounds = 2_000;
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let input = &inputs[i % inputs.len()];
        let started = Instant::now();
        engine.decide(&key, input).await.expect("decision");
        samples.push(started.elapsed());
    }
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));

    // Two tasks per core deciding at once.
    let started = Instant::now();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let engine = engine.clone();
            let inputs = inputs.clone();
            let key = key.clone();
            tokio::spawn(async move {
                for i in 0..500 {
                    engine
                        .decide(&key, &inputs[i % inputs.len()])
                        .await
                        .expect("decision");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task ran");
    }
    let per_decision = started.elapsed() / 2_000;

    println!(
        "embedded decide(): p50 {p50:?}, p99 {p99:?} sequential; {per_decision:?} per decision with 4 concurrent tasks on 2 threads"
    );
    assert!(p99 < Duration::from_millis(25), "p99 {p99:?}");
}
