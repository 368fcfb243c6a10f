//! `pecr-ledger-writer verify [--db-url URL] [--public-key FILE]`:
//! recomputes every hash the ledger stores (event payloads, the per-session
//! chains and their seals, evidence ids and content, claim ids, checkpoint
//! roots, links and signatures) in one read-only snapshot, and names the
//! first item that differs. Exit 0: all verified; 1: something is broken;
//! 2: it could not run. `VerifyLedger` runs the same pass over a time range.

mod checkpoints;
mod checks;
mod progress;
mod scan;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use tokio_postgres::{IsolationLevel, NoTls};

use crate::checkpoint::signing::{PublicKey, SigningKey};
use crate::env;
pub use checkpoints::Trust;
pub use checks::Broken;
pub use progress::Progress;
pub use scan::{Counts, Scope, Stop};

const USAGE: &str = "usage: pecr-ledger-writer verify [--db-url URL] [--public-key FILE]\n  \
     --db-url      the ledger database (else PECR_DB_URL)\n  \
     --public-key  the Ed25519 public key (PEM) checkpoints must be signed with; else the\n                \
     public half of PECR_LEDGER_SIGNING_KEY_FILE when set, else the key each checkpoint records";

/// Whether the process arguments ask for `verify` rather than the server.
pub fn requested(args: &[String]) -> bool {
    args.get(1).map(String::as_str) == Some("verify")
}

struct Arguments {
    db_url: String,
    trust: Trust,
}

/// `--name VALUE` or `--name=VALUE`.
fn flags(args: &[String]) -> Result<Vec<(String, String)>, String> {
    let mut flags = Vec::new();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let (name, value) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), value.to_owned()),
            None => (arg.clone(), rest.next().cloned().ok_or(USAGE)?),
        };
        if !["--db-url", "--public-key"].contains(&name.as_str()) {
            return Err(format!("unknown argument {arg}\n{USAGE}"));
        }
        flags.push((name, value));
    }
    Ok(flags)
}

fn arguments(args: &[String]) -> Result<Arguments, String> {
    let flags = flags(args)?;
    let flag = |name: &str| {
        flags
            .iter()
            .rev()
            .find(|(flag, _)| flag == name)
            .map(|(_, value)| value.clone())
    };
    let db_url = flag("--db-url")
        .or_else(|| setting(env::DB_URL))
        .ok_or_else(|| format!("no database: give --db-url or set {}\n{USAGE}", env::DB_URL))?;
    let trust = match (flag("--public-key"), setting(env::SIGNING_KEY_FILE)) {
        (Some(path), _) => Trust::Key {
            key: PublicKey::read(&PathBuf::from(&path))?,
            from: format!("--public-key {path}"),
        },
        (None, Some(path)) => Trust::Key {
            key: SigningKey::read(&PathBuf::from(&path))?
                .public_key()
                .clone(),
            from: env::SIGNING_KEY_FILE.to_owned(),
        },
        (None, None) => Trust::Recorded,
    };
    Ok(Arguments { db_url, trust })
}

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// Runs `verify` with the arguments after the subcommand.
pub async fn main(args: &[String]) -> ExitCode {
    let arguments = match arguments(args.get(2..).unwrap_or_default()) {
        Ok(arguments) => arguments,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let trust = arguments.trust.describe();
    match run(
        &arguments.db_url,
        Scope::Whole,
        arguments.trust,
        &mut Progress::on_stderr(),
    )
    .await
    {
        Ok(counts) => {
            println!("{}", summary("verified", &counts, started));
            println!("{}", signatures(&counts, &trust));
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

/// One pass over `scope` through its own connection (no pool statement
/// timeout) in a read-only snapshot.
pub async fn run(
    url: &str,
    scope: Scope,
    trust: Trust,
    progress: &mut Progress,
) -> Result<Counts, Stop> {
    let (mut client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let connection = tokio::spawn(connection);
    // One snapshot for every table, and no way to write through it.
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    let counts = scan::all(&tx, scope, trust, progress).await;
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
        "{verdict}: {} events ({} chained, {} unchained) in {} sessions, {} evidence units, {} claim maps, \
         {} checkpoints ({} signed, {} unsigned); {seconds:.2}s, {rate:.0} events/s",
        counts.events,
        counts.chained,
        counts.unchained,
        counts.sessions,
        counts.evidence_units,
        counts.claim_maps,
        counts.checkpoints,
        counts.signed_checkpoints,
        counts.unsigned_checkpoints
    )
}

fn signatures(counts: &Counts, trust: &str) -> String {
    let mut line = format!("checkpoint signatures checked with {trust}");
    if counts.unsigned_checkpoints > 0 {
        line.push_str(&format!(
            "; {} checkpoints are unsigned: they were written without {}",
            counts.unsigned_checkpoints,
            env::SIGNING_KEY_FILE
        ));
    }
    line
}
