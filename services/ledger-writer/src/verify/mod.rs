//! `pecr-ledger-writer verify [--db-url URL]`: recomputes every hash the
//! ledger stores (event payloads, the per-session chains and their seals,
//! evidence ids and content, claim ids) in one read-only snapshot, and
//! names the first item that differs. Exit 0: all verified; 1: something
//! is broken; 2: it could not run.

mod checks;
mod progress;
mod scan;

use std::process::ExitCode;
use std::time::Instant;

use tokio_postgres::{IsolationLevel, NoTls};

use crate::env;
use progress::Progress;
use scan::{Counts, Stop};

const USAGE: &str = "usage: pecr-ledger-writer verify [--db-url URL]  (else PECR_DB_URL)";

/// Whether the process arguments ask for `verify` rather than the server.
pub fn requested(args: &[String]) -> bool {
    args.get(1).map(String::as_str) == Some("verify")
}

/// The database URL from `--db-url URL`, `--db-url=URL` or [`env::DB_URL`].
fn db_url(args: &[String]) -> Result<String, String> {
    let mut url = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--db-url" => url = Some(rest.next().cloned().ok_or(USAGE)?),
            other => match other.strip_prefix("--db-url=") {
                Some(value) => url = Some(value.to_owned()),
                None => return Err(format!("unknown argument {other}\n{USAGE}")),
            },
        }
    }
    url.or_else(|| {
        std::env::var(env::DB_URL)
            .ok()
            .filter(|url| !url.is_empty())
    })
    .ok_or_else(|| format!("no database: give --db-url or set {}\n{USAGE}", env::DB_URL))
}

/// Runs `verify` with the arguments after the subcommand.
pub async fn main(args: &[String]) -> ExitCode {
    let url = match db_url(args.get(2..).unwrap_or_default()) {
        Ok(url) => url,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    match run(&url).await {
        Ok(counts) => {
            println!("{}", summary("verified", &counts, started));
            ExitCode::SUCCESS
        }
        Err(Stop::Broken(broken)) => {
            println!("BROKEN {broken}");
            ExitCode::from(1)
        }
        Err(Stop::Database(err)) => {
            eprintln!("verify could not read the ledger: {err}");
            ExitCode::from(2)
        }
    }
}

async fn run(url: &str) -> Result<Counts, Stop> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let connection = tokio::spawn(connection);
    // One snapshot for every table, and no way to write through it.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let counts = scan::all(&tx, &mut Progress::new()).await;
    drop(tx);
    drop(client);
    let _ = connection.await;
    counts
}

fn summary(verdict: &str, counts: &Counts, started: Instant) -> String {
    let seconds = started.elapsed().as_secs_f64();
    let rate = if seconds > 0.0 {
        counts.events as f64 / seconds
    } else {
        0.0
    };
    format!(
        "{verdict}: {} events ({} chained, {} unchained) in {} sessions, {} evidence units, {} claim maps; {seconds:.2}s, {rate:.0} events/s",
        counts.events,
        counts.chained,
        counts.unchained,
        counts.sessions,
        counts.evidence_units,
        counts.claim_maps
    )
}
