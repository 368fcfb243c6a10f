//! The bridge child process (spec 30 §10.2, §10.5): where the script is,
//! how it is spawned, line I/O bounded by the wall clock, and a shutdown
//! that kills and reaps the child on every path.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use pecr_errors::{ErrorCode, PecrError};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::env;

/// Searched in order when `PECR_RLM_SCRIPT_PATH` is unset.
pub const SCRIPT_SEARCH_PATH: [&str; 2] = [
    "/usr/local/share/pecr/pecr_rlm_bridge.py",
    "scripts/rlm/pecr_rlm_bridge.py",
];
const DEFAULT_PYTHON: &str = "python3";
/// How long an exiting bridge is given before (or after) it is killed.
pub const EXIT_GRACE: Duration = Duration::from_millis(250);
/// Longest request line accepted from the bridge; a longer one is a read error.
const MAX_LINE_BYTES: u64 = 16 * 1024 * 1024;
/// Stderr is read in chunks of at most this many bytes.
const STDERR_CHUNK_BYTES: u64 = 8 * 1024;
/// The only variables of the controller's environment the bridge inherits:
/// how to find programs, the locale, and the bridge's own backend choice.
/// Secrets (shared secret, OIDC settings, database URLs, TLS key paths)
/// never reach the child.
const INHERITED_ENV: [&str; 5] = ["PATH", "LANG", "LC_ALL", "LC_CTYPE", env::RLM_BACKEND];
/// Set for the child: no per-user site packages, no bytecode written.
const CHILD_ENV: [(&str, &str); 2] = [("PYTHONNOUSERSITE", "1"), ("PYTHONDONTWRITEBYTECODE", "1")];

/// `<python> <script>` for one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeCommand {
    pub python: String,
    pub script: PathBuf,
}

impl BridgeCommand {
    /// Resolves the command from the process environment.
    pub fn from_env() -> Result<Self, PecrError> {
        Self::resolve(|name| std::env::var(name).ok(), Path::exists)
    }

    /// `PECR_RLM_PYTHON` or `python3`; `PECR_RLM_SCRIPT_PATH` (not checked)
    /// or the first existing entry of the search path.
    pub fn resolve(
        var: impl Fn(&str) -> Option<String>,
        exists: impl Fn(&Path) -> bool,
    ) -> Result<Self, PecrError> {
        let set = |name: &str| {
            var(name)
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        let python = set(env::RLM_PYTHON).unwrap_or_else(|| DEFAULT_PYTHON.to_owned());
        let script = match set(env::RLM_SCRIPT_PATH) {
            Some(path) => PathBuf::from(path),
            None => SCRIPT_SEARCH_PATH
                .iter()
                .map(PathBuf::from)
                .find(|path| exists(path))
                .ok_or_else(|| {
                    debug!(
                        event = "rlm.bridge.script_not_found",
                        searched = %SCRIPT_SEARCH_PATH.join(" "),
                        "no rlm bridge script on the search path"
                    );
                    PecrError::new(
                        ErrorCode::RlmBridgeScriptNotFound,
                        "rlm bridge script not found",
                    )
                })?,
        };
        Ok(Self { python, script })
    }
}

/// Correlation ids carried by the bridge's stderr log lines.
#[derive(Debug, Clone)]
pub struct LogIds {
    pub request_id: String,
    pub trace_id: String,
}

/// The outcome of one bounded read.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Line(String),
    Eof,
    Failed,
    TimedOut,
}

/// Why a bounded write did not complete.
#[derive(Debug, PartialEq, Eq)]
pub enum WriteError {
    Failed,
    TimedOut,
}

/// A running bridge. Dropping it kills the child (`kill_on_drop`), but
/// [`Bridge::shutdown`] is the normal end: it also reaps it.
pub struct Bridge {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr_log: JoinHandle<()>,
    ids: LogIds,
}

impl Bridge {
    pub fn spawn(command: &BridgeCommand, ids: &LogIds) -> Result<Self, PecrError> {
        let inherited = INHERITED_ENV
            .iter()
            .filter_map(|name| std::env::var_os(name).map(|value| (*name, value)));
        let mut child = Command::new(&command.python)
            .arg(&command.script)
            .env_clear()
            .envs(inherited)
            .envs(CHILD_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                // Paths stay in the log; the client gets a fixed message.
                warn!(
                    event = "rlm.bridge.spawn_failed",
                    io_kind = ?err.kind(),
                    "cannot spawn the rlm bridge"
                );
                debug!(
                    event = "rlm.bridge.spawn_failed",
                    python = %command.python,
                    script = %command.script.display(),
                    "rlm bridge command"
                );
                PecrError::new(
                    ErrorCode::RlmBridgeSpawnFailed,
                    "cannot spawn the rlm bridge",
                )
            })?;
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            // `child` drops here, which kills it.
            return Err(PecrError::new(
                ErrorCode::RlmBridgeInternal,
                "cannot open the rlm bridge pipes",
            ));
        };
        Ok(Self {
            child,
            stdin: Some(stdin),
            stdout: BufReader::new(stdout),
            stderr_log: tokio::spawn(log_stderr(stderr, ids.clone())),
            ids: ids.clone(),
        })
    }

    /// Writes one line (already `\n`-terminated), giving up after `timeout`.
    pub async fn send(&mut self, line: &str, timeout: Duration) -> Result<(), WriteError> {
        let stdin = self.stdin.as_mut().ok_or(WriteError::Failed)?;
        let write = async {
            stdin.write_all(line.as_bytes()).await?;
            stdin.flush().await
        };
        match tokio::time::timeout(timeout, write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(WriteError::Failed),
            Err(_) => Err(WriteError::TimedOut),
        }
    }

    /// Reads the next line, waiting at most `timeout`.
    pub async fn read(&mut self, timeout: Duration) -> Read {
        let mut buffer = Vec::new();
        let mut limited = (&mut self.stdout).take(MAX_LINE_BYTES);
        match tokio::time::timeout(timeout, limited.read_until(b'\n', &mut buffer)).await {
            Err(_) => Read::TimedOut,
            Ok(Err(_)) => Read::Failed,
            Ok(Ok(0)) => Read::Eof,
            Ok(Ok(read)) if read as u64 >= MAX_LINE_BYTES && buffer.last() != Some(&b'\n') => {
                Read::Failed
            }
            Ok(Ok(_)) => match String::from_utf8(buffer) {
                Ok(line) => Read::Line(line),
                Err(_) => Read::Failed,
            },
        }
    }

    /// Ends the bridge and reaps it. With `done`, the bridge first gets
    /// [`EXIT_GRACE`] to exit on its own and its status is returned if it
    /// did; a bridge still running then, or any bridge without `done`, is
    /// killed and waited for.
    pub async fn shutdown(mut self, done: bool) -> Option<ExitStatus> {
        // A closed stdin lets a well-behaved bridge see EOF and leave.
        drop(self.stdin.take());
        let mut exited = None;
        if done {
            exited = tokio::time::timeout(EXIT_GRACE, self.child.wait())
                .await
                .ok()
                .and_then(Result::ok);
        }
        if exited.is_none() {
            // Already gone is fine; the wait below reaps it either way.
            let _ = self.child.start_kill();
            if tokio::time::timeout(EXIT_GRACE, self.child.wait())
                .await
                .is_err()
            {
                warn!(
                    event = "rlm.bridge.unreaped",
                    trace_id = %self.ids.trace_id,
                    request_id = %self.ids.request_id,
                    "rlm bridge did not exit after kill"
                );
            }
        }
        // Stderr ends with the process; don't wait on a descendant holding it.
        if tokio::time::timeout(EXIT_GRACE, &mut self.stderr_log)
            .await
            .is_err()
        {
            self.stderr_log.abort();
        }
        exited
    }
}

/// What the bridge wrote to stderr: counted and hashed, never kept.
#[derive(Default)]
struct StderrDigest {
    lines: u64,
    bytes: u64,
    hasher: Sha256,
}

impl StderrDigest {
    fn add(&mut self, chunk: &[u8]) {
        self.bytes += chunk.len() as u64;
        self.lines += chunk.iter().filter(|byte| **byte == b'\n').count() as u64;
        self.hasher.update(chunk);
    }

    /// Lines (a last line without a newline counts), bytes and SHA-256 hex.
    fn finish(self, ended_with_newline: bool) -> (u64, u64, String) {
        let partial = u64::from(self.bytes > 0 && !ended_with_newline);
        let digest = self.hasher.finalize();
        let hex = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        (self.lines + partial, self.bytes, hex)
    }
}

/// Reads stderr until the pipe closes, then logs one line with its size
/// and hash: bridge output can carry query, evidence or model text, so it
/// never reaches the log verbatim.
async fn log_stderr(stderr: impl AsyncRead + Unpin, ids: LogIds) {
    let mut reader = BufReader::new(stderr);
    let mut digest = StderrDigest::default();
    let mut buffer = Vec::new();
    let mut ended_with_newline = true;
    loop {
        buffer.clear();
        let mut limited = (&mut reader).take(STDERR_CHUNK_BYTES);
        match limited.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                ended_with_newline = buffer.last() == Some(&b'\n');
                digest.add(&buffer);
            }
        }
    }
    let (lines, bytes, sha256) = digest.finish(ended_with_newline);
    if bytes > 0 {
        warn!(
            event = "rlm.bridge.stderr",
            trace_id = %ids.trace_id,
            request_id = %ids.request_id,
            lines,
            bytes,
            sha256 = %sha256,
            "rlm bridge wrote to stderr"
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn explicit_script_path_is_trimmed_and_not_checked() {
        let command = BridgeCommand::resolve(
            vars(&[
                ("PECR_RLM_SCRIPT_PATH", "  /nowhere/bridge.py "),
                ("PECR_RLM_PYTHON", " /opt/py/bin/python3 "),
            ]),
            |_| false,
        )
        .expect("explicit path resolves");
        assert_eq!(command.script, PathBuf::from("/nowhere/bridge.py"));
        assert_eq!(command.python, "/opt/py/bin/python3");
    }

    #[test]
    fn search_path_order_and_defaults() {
        let command = BridgeCommand::resolve(
            vars(&[("PECR_RLM_SCRIPT_PATH", "  "), ("PECR_RLM_PYTHON", "")]),
            |path| path == Path::new("scripts/rlm/pecr_rlm_bridge.py"),
        )
        .expect("repo path resolves");
        assert_eq!(command.python, "python3");
        assert_eq!(
            command.script,
            PathBuf::from("scripts/rlm/pecr_rlm_bridge.py")
        );
        let command = BridgeCommand::resolve(vars(&[]), |_| true).expect("installed path resolves");
        assert_eq!(
            command.script,
            PathBuf::from("/usr/local/share/pecr/pecr_rlm_bridge.py")
        );
        let missing = BridgeCommand::resolve(vars(&[]), |_| false).expect_err("nothing exists");
        assert_eq!(missing.code, ErrorCode::RlmBridgeScriptNotFound);
    }

    fn ids() -> LogIds {
        LogIds {
            request_id: "req".into(),
            trace_id: "trace".into(),
        }
    }

    /// A shell script in a temp file, removed on drop.
    struct ShellScript(PathBuf);

    impl ShellScript {
        fn new(script: &str) -> Self {
            static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let number = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = std::env::temp_dir().join(format!(
                "pecr-rlm-bridge-test-{}-{number}.sh",
                std::process::id()
            ));
            std::fs::write(&path, script).expect("temp script written");
            Self(path)
        }

        /// `sh <file>`.
        fn command(&self) -> BridgeCommand {
            BridgeCommand {
                python: "sh".into(),
                script: self.0.clone(),
            }
        }
    }

    impl Drop for ShellScript {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[tokio::test]
    async fn spawn_failure_is_its_own_error() {
        let command = BridgeCommand {
            python: "/nonexistent/python-for-pecr-tests".into(),
            script: PathBuf::from("bridge.py"),
        };
        let err = Bridge::spawn(&command, &ids()).err().expect("spawn fails");
        assert_eq!(err.code, ErrorCode::RlmBridgeSpawnFailed);
    }

    /// Whether `pid` still runs; a zombie waiting for its reaper does not.
    fn running(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|stat| {
                let (_, fields) = stat.rsplit_once(')')?;
                Some(!fields.trim_start().starts_with('Z'))
            })
            .unwrap_or(false)
    }

    /// The process of a running bridge.
    fn pid(bridge: &Bridge) -> u32 {
        let pid = bridge.child.id().expect("not yet reaped");
        assert!(running(pid));
        pid
    }

    // Killed, not awaited: `sleep 30` is gone at once, and no exit status
    // means the bridge did not exit by itself.
    #[tokio::test]
    async fn silent_bridge_times_out_and_is_killed() {
        let script = ShellScript::new("exec sleep 30");
        let mut bridge = Bridge::spawn(&script.command(), &ids()).expect("sh spawns");
        assert_eq!(bridge.read(Duration::from_millis(50)).await, Read::TimedOut);
        let pid = pid(&bridge);
        assert_eq!(bridge.shutdown(false).await, None);
        assert!(!running(pid), "killed");
    }

    #[tokio::test]
    async fn done_bridge_reports_its_exit_status() {
        let script = ShellScript::new("read line; echo \"$line\"; exit 3");
        let mut bridge = Bridge::spawn(&script.command(), &ids()).expect("sh spawns");
        bridge
            .send("{\"type\":\"start\"}\n", Duration::from_secs(5))
            .await
            .expect("write works");
        assert_eq!(
            bridge.read(Duration::from_secs(5)).await,
            Read::Line("{\"type\":\"start\"}\n".into())
        );
        let status = bridge.shutdown(true).await.expect("exited in time");
        assert_eq!(status.code(), Some(3));
        let script = ShellScript::new("exit 0");
        let mut bridge = Bridge::spawn(&script.command(), &ids()).expect("sh spawns");
        assert_eq!(bridge.read(Duration::from_secs(5)).await, Read::Eof);
        assert!(bridge.shutdown(true).await.is_some_and(|s| s.success()));
    }

    #[tokio::test]
    async fn the_child_sees_only_the_allowlisted_environment() {
        let script = ShellScript::new("env; exit 0");
        let mut bridge = Bridge::spawn(&script.command(), &ids()).expect("sh spawns");
        let mut names = Vec::new();
        while let Read::Line(line) = bridge.read(Duration::from_secs(5)).await {
            names.extend(line.split('=').next().map(str::to_owned));
        }
        bridge.shutdown(true).await;
        assert!(names.iter().any(|name| name == "PATH"), "{names:?}");
        assert!(
            names.iter().any(|name| name == "PYTHONNOUSERSITE"),
            "{names:?}"
        );
        // cargo runs tests with CARGO_* set; none may leak through.
        assert!(std::env::var_os("CARGO_PKG_NAME").is_some());
        let shell_own = ["PWD", "OLDPWD", "SHLVL", "_"];
        for name in &names {
            assert!(
                INHERITED_ENV.contains(&name.as_str())
                    || CHILD_ENV.iter().any(|(set, _)| set == name)
                    || shell_own.contains(&name.as_str()),
                "{name} reached the bridge"
            );
        }
    }

    #[test]
    fn stderr_is_summarised_not_kept() {
        let mut digest = StderrDigest::default();
        digest.add(b"secret line one\n");
        digest.add(b"secret tail");
        let (lines, bytes, sha256) = digest.finish(false);
        assert_eq!((lines, bytes), (2, 27));
        assert_eq!(
            sha256,
            pecr_contracts::sha256_hex(b"secret line one\nsecret tail")
        );
        let (lines, bytes, _) = StderrDigest::default().finish(true);
        assert_eq!((lines, bytes), (0, 0));
    }

    #[tokio::test]
    async fn spawn_errors_name_no_path() {
        let command = BridgeCommand {
            python: "/nonexistent/secret-dir/python".into(),
            script: PathBuf::from("/srv/secret-dir/bridge.py"),
        };
        let err = Bridge::spawn(&command, &ids()).err().expect("spawn fails");
        assert_eq!(err.message, "cannot spawn the rlm bridge");
        let missing = BridgeCommand::resolve(vars(&[]), |_| false).expect_err("nothing exists");
        assert_eq!(missing.message, "rlm bridge script not found");
    }

    #[tokio::test]
    async fn lingering_done_bridge_is_killed() {
        let script = ShellScript::new("exec sleep 30");
        let bridge = Bridge::spawn(&script.command(), &ids()).expect("sh spawns");
        let pid = pid(&bridge);
        assert_eq!(bridge.shutdown(true).await, None, "not exited in 250 ms");
        assert!(!running(pid), "killed");
    }
}
