//! Release provenance end to end, as a release manager and an operator run
//! it: `scripts/release.sh` cuts a release of the workspace's built
//! binaries (`--binaries`, so no release build) from a throw-away git
//! repository holding the files the script reads, with a throw-away key
//! from `openssl genpkey`; `pecr release verify` (and
//! `scripts/verify-release.sh`) passes it, and fails, naming what failed,
//! on every kind of tampering. openssl checks the DSSE signature on its
//! own, so the envelope is standard and not merely self-consistent.
//!
//! Needs `cargo build --workspace --bins` first (scripts/test.sh does it),
//! git, openssl, tar, gzip and sha256sum.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use serde_json::Value;

const BINARIES: [&str; 4] = [
    "pecr-gateway",
    "pecr-controller",
    "pecr-ledger-writer",
    "pecr",
];
/// The throw-away repository's only commit is made at this time.
const COMMIT_TIME: &str = "2026-01-02T03:04:05Z";
const COMMIT_EPOCH: u64 = 1_767_323_045;
const SOURCE_URI: &str = "git+https://example.invalid/pecr.git";
const BUILDER_ID: &str = "urn:pecr:builder:test";

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("workspace root")
}

/// The directory of the built workspace binaries (target/debug).
fn binaries_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_pecr"))
        .parent()
        .expect("a directory")
        .to_path_buf();
    for bin in BINARIES {
        assert!(
            dir.join(bin).is_file(),
            "{} is not built; run `cargo build --workspace --bins --features pecr-controller/rlm` \
             (scripts/test.sh does)",
            dir.join(bin).display()
        );
    }
    dir
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs a command that must succeed; its stdout.
fn ok(command: &mut Command) -> String {
    let output = run(command);
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

fn git(repo: &Path) -> Command {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(repo)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.invalid")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.invalid")
        .env("GIT_AUTHOR_DATE", COMMIT_TIME)
        .env("GIT_COMMITTER_DATE", COMMIT_TIME)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE");
    command
}

/// A git repository with one commit of the files scripts/release.sh reads.
fn source_repo(at: &Path) -> String {
    let root = workspace_root();
    let listed = ok(Command::new("git").arg("-C").arg(&root).args([
        "ls-files",
        "--",
        "vendor/rlm",
        "scripts/rlm/pecr_rlm_bridge.py",
    ]));
    let files = listed.lines().chain([
        "Cargo.toml",
        "Cargo.lock",
        "scripts/lib.sh",
        "scripts/release.sh",
    ]);
    for file in files {
        let to = at.join(file);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        std::fs::copy(root.join(file), &to).unwrap_or_else(|err| panic!("copy {file}: {err}"));
    }
    ok(git(at).args(["init", "-q", "-b", "main"]));
    ok(git(at).args(["add", "-A"]));
    ok(git(at).args(["commit", "-q", "-m", "release test"]));
    ok(git(at).args(["rev-parse", "HEAD"])).trim().to_owned()
}

/// A fresh Ed25519 key pair: (private PKCS#8 PEM, public SPKI PEM).
fn key_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    ok(Command::new("openssl")
        .args(["genpkey", "-algorithm", "ed25519", "-out"])
        .arg(&private));
    ok(Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public));
    (private, public)
}

fn release_sh(repo: &Path, key: &Path, out: &Path, extra: &[&str]) -> Output {
    run(Command::new("bash")
        .arg(repo.join("scripts/release.sh"))
        .arg("--key")
        .arg(key)
        .arg("--binaries")
        .arg(binaries_dir())
        .arg("--out-dir")
        .arg(out)
        .args(["--source-uri", SOURCE_URI, "--builder-id", BUILDER_ID])
        .args(extra))
}

/// The one release directory under `out`.
fn release_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("out dir")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            !path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn verify(dir: &Path, public: &Path, extra: &[&str]) -> Output {
    run(Command::new(env!("CARGO_BIN_EXE_pecr"))
        .args(["release", "verify"])
        .arg(dir)
        .arg("--public-key")
        .arg(public)
        .args(extra))
}

/// Verification fails with exit 1 and a message containing `expected`.
fn assert_fails(case: &str, output: &Output, expected: &str) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{case}: {stderr}");
    assert!(
        stderr.contains(expected),
        "{case}: no {expected:?} in:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn envelope(dir: &Path) -> Value {
    let line = std::fs::read_to_string(dir.join("provenance.intoto.jsonl")).expect("provenance");
    serde_json::from_str(&line).expect("one JSON envelope")
}

fn write_envelope(dir: &Path, envelope: &Value) {
    std::fs::write(dir.join("provenance.intoto.jsonl"), format!("{envelope}\n")).expect("write");
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn statement(envelope: &Value) -> Value {
    let payload = B64
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("base64");
    serde_json::from_slice(&payload).expect("JSON statement")
}

/// The DSSE pre-authentication encoding, written out from the spec here so
/// that the signer's own implementation is not what checks it.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Whether openssl accepts `signature` over `message` with `public`.
fn openssl_verifies(dir: &Path, public: &Path, message: &[u8], signature: &[u8]) -> bool {
    let (msg, sig) = (dir.join("pae.bin"), dir.join("sig.bin"));
    std::fs::write(&msg, message).expect("write");
    std::fs::write(&sig, signature).expect("write");
    run(Command::new("openssl")
        .args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
        .arg(public)
        .arg("-in")
        .arg(&msg)
        .arg("-sigfile")
        .arg(&sig))
    .status
    .success()
}

fn openssl_sign(dir: &Path, private: &Path, message: &[u8]) -> Vec<u8> {
    let (msg, sig) = (dir.join("pae.bin"), dir.join("sig.bin"));
    std::fs::write(&msg, message).expect("write");
    ok(Command::new("openssl")
        .args(["pkeyutl", "-sign", "-rawin", "-inkey"])
        .arg(private)
        .arg("-in")
        .arg(&msg)
        .arg("-out")
        .arg(&sig));
    std::fs::read(&sig).expect("signature")
}

#[test]
fn a_release_verifies_and_every_tampering_is_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let commit = source_repo(&repo);
    let (private, public) = key_pair(tmp.path(), "release");
    let (other_private, other_public) = key_pair(tmp.path(), "other");

    // Cut it.
    let out = tmp.path().join("out");
    let cut = release_sh(&repo, &private, &out, &[]);
    assert!(
        cut.status.success(),
        "{}{}",
        text(&cut.stdout),
        text(&cut.stderr)
    );
    let dir = release_dir(&out);
    let release = format!("{}-{}", env!("CARGO_PKG_VERSION"), &commit[..12]);
    assert_eq!(dir.file_name().expect("name").to_string_lossy(), release);

    // What it holds: one tarball per binary, sha256sum's own format.
    let sums = std::fs::read_to_string(dir.join("SHA256SUMS")).expect("SHA256SUMS");
    let names: Vec<&str> = sums
        .lines()
        .filter_map(|l| l.split_once("  "))
        .map(|(_, n)| n)
        .collect();
    assert_eq!(names.len(), BINARIES.len(), "{sums}");
    for bin in BINARIES {
        let prefix = format!("{bin}-{release}-");
        assert!(
            names
                .iter()
                .any(|n| n.starts_with(&prefix) && n.ends_with(".tar.gz")),
            "{bin}: {sums}"
        );
    }
    ok(Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(&dir));

    // Tarballs: root-owned entries at the commit's time, the binary intact,
    // the controller's RLM bridge beside it.
    let pecr_prefix = format!("pecr-{release}-");
    let pecr_tarball = names
        .iter()
        .find(|n| n.starts_with(&pecr_prefix))
        .expect("pecr tarball");
    let listing = ok(Command::new("tar")
        .args([
            "--list",
            "--verbose",
            "--numeric-owner",
            "--full-time",
            "--file",
        ])
        .arg(dir.join(pecr_tarball)));
    assert!(
        listing.lines().all(|line| line.contains(" 0/0 ")),
        "{listing}"
    );
    assert!(listing.contains("2026-01-02 03:04:05"), "{listing}");
    let unpacked = tmp.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("mkdir");
    ok(Command::new("tar")
        .arg("-xzf")
        .arg(dir.join(pecr_tarball))
        .arg("-C")
        .arg(&unpacked));
    let top = release_dir(&unpacked);
    assert_eq!(
        std::fs::read(top.join("bin/pecr")).expect("unpacked pecr"),
        std::fs::read(binaries_dir().join("pecr")).expect("built pecr"),
    );
    let controller = names
        .iter()
        .copied()
        .find(|n| n.starts_with("pecr-controller-"))
        .expect("controller");
    let listing = ok(Command::new("tar").arg("-tzf").arg(dir.join(controller)));
    assert!(
        listing.contains("/share/pecr/pecr_rlm_bridge.py"),
        "{listing}"
    );
    assert!(listing.contains("/share/pecr/vendor/rlm/"), "{listing}");

    // The envelope is standard DSSE: openssl verifies it over the PAE.
    let envelope_json = envelope(&dir);
    assert_eq!(envelope_json["payloadType"], "application/vnd.in-toto+json");
    let payload = B64
        .decode(envelope_json["payload"].as_str().expect("payload"))
        .expect("b64");
    let signature = B64
        .decode(envelope_json["signatures"][0]["sig"].as_str().expect("sig"))
        .expect("b64");
    let message = pae("application/vnd.in-toto+json", &payload);
    assert!(openssl_verifies(tmp.path(), &public, &message, &signature));
    assert!(!openssl_verifies(
        tmp.path(),
        &other_public,
        &message,
        &signature
    ));

    // The statement: subjects = SHA256SUMS, the commit, the materials.
    let statement = statement(&envelope_json);
    assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let subjects: Vec<String> = statement["subject"]
        .as_array()
        .expect("subjects")
        .iter()
        .map(|s| {
            format!(
                "{}  {}",
                s["digest"]["sha256"].as_str().expect("sha256"),
                s["name"].as_str().expect("name")
            )
        })
        .collect();
    assert_eq!(subjects, sums.lines().collect::<Vec<_>>());
    let definition = &statement["predicate"]["buildDefinition"];
    assert_eq!(definition["buildType"], "urn:pecr:build-type:release-sh:v1");
    let source = &definition["externalParameters"]["source"];
    assert_eq!(source["digest"]["gitCommit"], commit.as_str());
    assert_eq!(source["uri"], SOURCE_URI);
    assert_eq!(source["dirty"], false);
    let arguments = definition["externalParameters"]["arguments"].to_string();
    assert!(arguments.contains("--binaries"), "{arguments}");
    assert_eq!(
        definition["internalParameters"]["sourceDateEpoch"],
        COMMIT_EPOCH.to_string()
    );
    assert!(
        definition["internalParameters"]["rustc"]
            .as_str()
            .expect("rustc")
            .starts_with("rustc ")
    );
    let lock = ok(Command::new("sha256sum").arg(repo.join("Cargo.lock")));
    let dependencies = definition["resolvedDependencies"].as_array().expect("deps");
    let digest_of = |name: &str| {
        dependencies
            .iter()
            .find(|d| d["name"] == name)
            .and_then(|d| d["digest"]["sha256"].as_str())
            .unwrap_or_else(|| panic!("no {name} in {dependencies:?}"))
            .to_owned()
    };
    assert_eq!(
        digest_of("Cargo.lock"),
        lock.split_whitespace().next().expect("digest")
    );
    assert_eq!(digest_of("rustc").len(), 64);
    let run_details = &statement["predicate"]["runDetails"];
    assert_eq!(run_details["builder"]["id"], BUILDER_ID);
    for field in ["invocationId", "startedOn", "finishedOn"] {
        assert!(
            run_details["metadata"][field]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{field}"
        );
    }

    // An operator verifies it.
    let passed = verify(&dir, &public, &[]);
    let stdout = text(&passed.stdout);
    assert!(passed.status.success(), "{stdout}{}", text(&passed.stderr));
    assert!(
        stdout.contains(&commit) && stdout.contains("not checked"),
        "{stdout}"
    );
    assert!(stdout.contains("4 artifacts"), "{stdout}");
    for wanted in [commit.as_str(), &commit[..7]] {
        let passed = verify(&dir, &public, &["--commit", wanted]);
        assert!(passed.status.success(), "{}", text(&passed.stderr));
        assert!(text(&passed.stdout).contains("as required"));
    }
    let script = run(Command::new("bash")
        .arg(workspace_root().join("scripts/verify-release.sh"))
        .arg(&dir)
        .arg("--public-key")
        .arg(&public)
        .args(["--commit", &commit])
        .env("PECR_BIN", env!("CARGO_BIN_EXE_pecr")));
    assert!(script.status.success(), "{}", text(&script.stderr));

    // The same commit and binaries pack to the same bytes.
    let again = tmp.path().join("again");
    let cut = release_sh(&repo, &private, &again, &[]);
    assert!(cut.status.success(), "{}", text(&cut.stderr));
    let sums_again = std::fs::read_to_string(release_dir(&again).join("SHA256SUMS")).expect("sums");
    assert_eq!(sums_again, sums);

    // Tampering, each on its own copy.
    let copy = |case: &str| {
        let to = tmp.path().join("tampered").join(case);
        copy_dir(&dir, &to);
        to
    };

    let changed = copy("changed-tarball");
    let tarball = changed.join(controller);
    let mut bytes = std::fs::read(&tarball).expect("read");
    bytes.push(0);
    std::fs::write(&tarball, bytes).expect("write");
    assert_fails(
        "changed tarball",
        &verify(&changed, &public, &[]),
        &format!("{controller}: its SHA-256 is"),
    );
    let script = run(Command::new("bash")
        .arg(workspace_root().join("scripts/verify-release.sh"))
        .arg(&changed)
        .arg("--public-key")
        .arg(&public)
        .env("PECR_BIN", env!("CARGO_BIN_EXE_pecr")));
    assert_fails("changed tarball, script", &script, controller);

    let extra = copy("extra-tarball");
    std::fs::write(extra.join("extra.tar.gz"), b"not from the build").expect("write");
    assert_fails(
        "extra tarball",
        &verify(&extra, &public, &[]),
        "extra.tar.gz: not listed in SHA256SUMS",
    );

    // A swapped tarball with a SHA256SUMS to match: the signed subjects differ.
    let swapped = copy("swapped");
    std::fs::write(swapped.join(controller), b"swapped").expect("write");
    let digest = ok(Command::new("sha256sum")
        .arg(controller)
        .current_dir(&swapped));
    let rewritten: String = sums
        .lines()
        .map(|line| {
            if line.ends_with(controller) {
                digest.clone()
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    std::fs::write(swapped.join("SHA256SUMS"), rewritten).expect("write");
    assert_fails(
        "swapped",
        &verify(&swapped, &public, &[]),
        &format!("{controller}: the signed statement gives"),
    );

    // The statement changed under the signature.
    let mut altered = statement.clone();
    altered["predicate"]["buildDefinition"]["externalParameters"]["source"]["digest"]["gitCommit"] =
        Value::from("0".repeat(40));
    let altered_payload = serde_json::to_vec(&altered).expect("json");
    let mut forged = envelope_json.clone();
    forged["payload"] = Value::from(B64.encode(&altered_payload));
    let statement_dir = copy("altered-statement");
    write_envelope(&statement_dir, &forged);
    assert_fails(
        "altered statement",
        &verify(&statement_dir, &public, &[]),
        "the signature does not verify",
    );

    // The signature changed.
    let mut flipped = signature.clone();
    flipped[0] ^= 1;
    let mut bad_sig = envelope_json.clone();
    bad_sig["signatures"][0]["sig"] = Value::from(B64.encode(&flipped));
    let sig_dir = copy("altered-signature");
    write_envelope(&sig_dir, &bad_sig);
    assert_fails(
        "altered signature",
        &verify(&sig_dir, &public, &[]),
        "the signature does not verify",
    );

    // Re-signed by someone else (with openssl): valid for their key only.
    let resigned_sig = openssl_sign(
        tmp.path(),
        &other_private,
        &pae("application/vnd.in-toto+json", &altered_payload),
    );
    let mut resigned = forged.clone();
    resigned["signatures"][0]["sig"] = Value::from(B64.encode(&resigned_sig));
    let resigned_dir = copy("resigned");
    write_envelope(&resigned_dir, &resigned);
    assert_fails(
        "re-signed",
        &verify(&resigned_dir, &public, &[]),
        "the signature does not verify",
    );
    let theirs = verify(&resigned_dir, &other_public, &[]);
    assert!(
        theirs.status.success(),
        "openssl's DSSE signature reads: {}",
        text(&theirs.stderr)
    );

    // The wrong key, the wrong commit.
    assert_fails(
        "wrong key",
        &verify(&dir, &other_public, &[]),
        "no signature verifies with the public key",
    );
    assert_fails(
        "wrong commit",
        &verify(&dir, &public, &["--commit", "deadbeef"]),
        &format!("the release was built from commit {commit}, not deadbeef"),
    );

    // Malformed input: a clear error, never a panic.
    let garbage = copy("garbage");
    std::fs::write(garbage.join("SHA256SUMS"), "nonsense\n").expect("write");
    std::fs::write(
        garbage.join("provenance.intoto.jsonl"),
        "{\"payload\": 1}\n",
    )
    .expect("write");
    let output = verify(&garbage, &public, &[]);
    assert_fails("garbage", &output, "SHA256SUMS: line 1 is not");
    assert_fails(
        "garbage",
        &output,
        "provenance.intoto.jsonl: not a DSSE envelope",
    );
    let not_a_key = tmp.path().join("not-a-key");
    std::fs::write(&not_a_key, "hello").expect("write");
    for (case, output) in [
        ("bad key", verify(&dir, &not_a_key, &[])),
        ("private key", verify(&dir, &private, &[])),
        ("no dir", verify(&tmp.path().join("nowhere"), &public, &[])),
        ("bad commit", verify(&dir, &public, &["--commit", "xyz"])),
    ] {
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{case}: {stderr}");
        assert!(stderr.starts_with("error:"), "{case}: {stderr}");
    }
}

#[test]
fn a_dirty_tree_is_refused_unless_allowed_and_then_recorded() {
    let tmp = tempfile::tempdir().expect("tmp");
    let repo = tmp.path().join("repo");
    let commit = source_repo(&repo);
    let (private, public) = key_pair(tmp.path(), "release");
    std::fs::write(repo.join("uncommitted.txt"), "x").expect("write");

    let out = tmp.path().join("out");
    let refused = release_sh(&repo, &private, &out, &[]);
    assert!(!refused.status.success());
    assert!(
        text(&refused.stderr).contains("uncommitted changes"),
        "{}",
        text(&refused.stderr)
    );
    assert!(!out.exists() || std::fs::read_dir(&out).expect("out").next().is_none());

    let allowed = release_sh(&repo, &private, &out, &["--allow-dirty"]);
    assert!(allowed.status.success(), "{}", text(&allowed.stderr));
    let dir = release_dir(&out);
    assert!(
        dir.to_string_lossy()
            .ends_with(&format!("{}-dirty", &commit[..12])),
        "{}",
        dir.display()
    );
    let statement = statement(&envelope(&dir));
    assert_eq!(
        statement["predicate"]["buildDefinition"]["externalParameters"]["source"]["dirty"],
        true
    );
    let passed = verify(&dir, &public, &["--commit", &commit]);
    assert!(passed.status.success(), "{}", text(&passed.stderr));
    assert!(
        text(&passed.stdout).contains("DIRTY"),
        "{}",
        text(&passed.stdout)
    );
}
