//! `pecr release`: offline checks of a release directory (`verify`), and
//! the signing step of `scripts/release.sh` (`attest`). Nothing here calls
//! the controller.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pecr_provenance::{BuildFacts, PROVENANCE_FILE, SUMS_FILE, Verified};
use pecr_signing::{PublicKey, SigningKey};

use crate::{EXIT_CALL_FAILED, EXIT_USAGE, stdout, time};

#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Check a release directory offline, with only the release public key.
    #[command(after_help = "\
Checks that every SHA256SUMS line matches its file and every *.tar.gz is
listed; that provenance.intoto.jsonl (a DSSE envelope) is signed by the key
over its PAE; that the signed statement's subjects equal SHA256SUMS; and,
with --commit, that the release was built from that commit. Prints the
source, commit, builder and artifacts; exits 1 naming every problem found,
2 when the key or directory cannot be read.

Example:
  pecr release verify target/release-dist/0.1.0-0123456789ab --public-key release.pub --commit 0123456789ab")]
    Verify(VerifyArgs),

    /// Write SHA256SUMS and the signed provenance for the tarballs in a
    /// directory (the last step of scripts/release.sh).
    Attest(Box<AttestArgs>),
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The release directory (target/release-dist/<version>-<commit>).
    pub dir: PathBuf,

    /// The release key's public half: PEM as `openssl pkey -pubout` writes
    /// it, or a file holding its 64 hex digits.
    #[arg(long, value_name = "FILE")]
    pub public_key: PathBuf,

    /// Require the release to be built from this commit: the full id or a
    /// prefix of at least 7 hex digits. Without it the commit is printed,
    /// not checked.
    #[arg(long, value_name = "SHA", value_parser = commit_prefix)]
    pub commit: Option<String>,
}

#[derive(Debug, Args)]
pub struct AttestArgs {
    /// The directory of release tarballs (*.tar.gz); it must not hold
    /// SHA256SUMS or provenance yet.
    pub dir: PathBuf,

    /// The release signing key: Ed25519, PKCS#8 PEM (`openssl genpkey -algorithm ed25519`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,

    /// Where the source lives (the git remote).
    #[arg(long, value_name = "URI")]
    pub source_uri: String,

    /// The full commit id the release was cut from.
    #[arg(long, value_name = "SHA")]
    pub commit: String,

    /// The work tree differed from the commit.
    #[arg(long)]
    pub dirty: bool,

    /// The workspace version.
    #[arg(long, value_name = "VERSION")]
    pub release_version: String,

    /// Who built it (SLSA builder.id).
    #[arg(long, value_name = "URI")]
    pub builder_id: String,

    /// This build's id.
    #[arg(long, value_name = "ID")]
    pub invocation_id: String,

    /// When the build started (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    pub started_on: String,

    /// When the build and packing finished (RFC 3339).
    #[arg(long, value_name = "TIME", value_parser = rfc3339)]
    pub finished_on: String,

    /// A file the build used, recorded with its SHA-256 (repeat).
    #[arg(long = "material", value_name = "NAME=FILE", value_parser = material)]
    pub materials: Vec<(String, PathBuf)>,

    /// A choice the build script made itself, recorded as is (repeat).
    #[arg(long = "internal", value_name = "KEY=VALUE", value_parser = key_value)]
    pub internal: Vec<(String, String)>,

    /// The arguments the release script was given, after `--`.
    #[arg(last = true, value_name = "ARGS")]
    pub arguments: Vec<String>,
}

pub fn run(command: &ReleaseCommand) -> ExitCode {
    match command {
        ReleaseCommand::Verify(args) => verify(args),
        ReleaseCommand::Attest(args) => attest(args),
    }
}

fn verify(args: &VerifyArgs) -> ExitCode {
    let key = match PublicKey::read_pem_or_hex(&args.public_key) {
        Ok(key) => key,
        Err(err) => return usage(&err),
    };
    if !args.dir.is_dir() {
        return usage(&format!("{} is not a directory", args.dir.display()));
    }
    match pecr_provenance::verify(&args.dir, &key, args.commit.as_deref()) {
        Ok(verified) => {
            stdout(report(&args.dir, &key, &verified, args.commit.is_some()).as_bytes());
            ExitCode::SUCCESS
        }
        Err(problems) => {
            let mut text = format!(
                "error: the release in {} failed verification:\n",
                args.dir.display()
            );
            for problem in problems {
                text.push_str(&format!("  - {problem}\n"));
            }
            eprint!("{text}");
            ExitCode::from(EXIT_CALL_FAILED)
        }
    }
}

fn report(dir: &Path, key: &PublicKey, verified: &Verified, commit_checked: bool) -> String {
    let definition = &verified.statement.predicate.build_definition;
    let run = &verified.statement.predicate.run_details;
    let parameters = &definition.external_parameters;
    let source = &parameters.source;
    let tree = if source.dirty {
        "a DIRTY work tree: uncommitted changes were built (--allow-dirty)"
    } else {
        "a clean work tree"
    };
    let mut text = format!(
        "verified release {} in {}\n  source:    {}\n  commit:    {} ({})\n  built from {tree}\n",
        parameters.version,
        dir.display(),
        source.uri,
        source.commit().unwrap_or_default(),
        if commit_checked {
            "as required"
        } else {
            "not checked: pass --commit to require it"
        },
    );
    text.push_str(&format!(
        "  builder:   {}, {} to {}\n",
        run.builder.id, run.metadata.started_on, run.metadata.finished_on
    ));
    if let Some(rustc) = definition.internal_parameters.get("rustc") {
        text.push_str(&format!("  toolchain: {rustc}\n"));
    }
    text.push_str(&format!(
        "  signed by: {} ({PROVENANCE_FILE})\n",
        key.to_hex()
    ));
    text.push_str(&format!(
        "  {} artifacts, each matching {SUMS_FILE} and the signed statement:\n",
        verified.artifacts.len()
    ));
    for artifact in &verified.artifacts {
        text.push_str(&format!("    {}  {}\n", artifact.sha256, artifact.name));
    }
    text
}

fn attest(args: &AttestArgs) -> ExitCode {
    let key = match SigningKey::read(&args.key) {
        Ok(key) => key,
        Err(err) => return usage(&err),
    };
    let facts = BuildFacts {
        source_uri: args.source_uri.clone(),
        commit: args.commit.clone(),
        dirty: args.dirty,
        version: args.release_version.clone(),
        arguments: args.arguments.clone(),
        internal: args.internal.iter().cloned().collect(),
        materials: args.materials.clone(),
        builder_id: args.builder_id.clone(),
        invocation_id: args.invocation_id.clone(),
        started_on: args.started_on.clone(),
        finished_on: args.finished_on.clone(),
    };
    match pecr_provenance::attest(&args.dir, &key, &facts) {
        Ok(entries) => {
            let text = format!(
                "wrote {SUMS_FILE} and {PROVENANCE_FILE} for {} tarballs in {}, signed by {}\n",
                entries.len(),
                args.dir.display(),
                key.public_key().to_hex()
            );
            stdout(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(EXIT_CALL_FAILED)
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(EXIT_USAGE)
}

fn commit_prefix(text: &str) -> Result<String, String> {
    if (7..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(text.to_ascii_lowercase())
    } else {
        Err("expected a commit id: 7 to 64 hex digits".to_owned())
    }
}

fn rfc3339(text: &str) -> Result<String, String> {
    match time::rfc3339(text) {
        Some(_) => Ok(text.to_owned()),
        None => Err("expected an RFC 3339 time (2026-01-31T12:00:00Z)".to_owned()),
    }
}

fn material(text: &str) -> Result<(String, PathBuf), String> {
    key_value(text).map(|(name, path)| (name, PathBuf::from(path)))
}

fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err("expected NAME=VALUE".to_owned()),
    }
}
