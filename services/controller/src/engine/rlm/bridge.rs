//! The bridge child process (spec 30 §10.2, §10.5): where the script is,
//! how it is spawned, line I/O bounded by the wall clock, and a shutdown
//! that kills and reaps the child on every path.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use pecr_errors::{ErrorCode, PecrError};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;
use tracing::warn;

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
/// Longest stderr line logged; the rest follows as further lines.
const MAX_STDERR_LINE_BYTES: u64 = 8 * 1024;

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
                    PecrError::new(
                        ErrorCode::RlmBridgeScriptNotFound,
                        format!(
                            "rlm bridge script not found (set {} or install it at {})",
                            env::RLM_SCRIPT_PATH,
                            SCRIPT_SEARCH_PATH.join(" or ")
                        ),
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
        let mut child = Command::new(&command.python)
            .arg(&command.script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| {
                PecrError::new(
                    ErrorCode::RlmBridgeSpawnFailed,
                    format!(
                        "cannot spawn the rlm bridge {} {}: {err}",
                        command.python,
                        command.script.display()
                    ),
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

/// Logs every stderr line as a warning until the pipe closes.
async fn log_stderr(stderr: impl AsyncRead + Unpin, ids: LogIds) {
    let mut reader = BufReader::new(stderr);
    let mut buffer = Vec::new();
    loop {
        buffer.clear();
        let mut limited = (&mut reader).take(MAX_STDERR_LINE_BYTES);
        match limited.read_until(b'\n', &mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buffer);
                warn!(
                    event = "rlm.bridge.stderr",
                    trace_id = %ids.trace_id,
                    request_id = %ids.request_id,
                    line = %line.trim_end(),
                    "rlm bridge stderr"
                );
            }
        }
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

    #[tokio::test]
    async fn silent_bridge_times_out_and_is_killed() {
        let script = ShellScript::new("exec sleep 30");
        let mut bridge = Bridge::spawn(&script.command(), &ids()).expect("sh spawns");
        assert_eq!(bridge.read(Duration::from_millis(50)).await, Read::TimedOut);
        let started = std::time::Instant::now();
        assert_eq!(bridge.shutdown(false).await, None);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "killed, not awaited"
        );
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
    async fn lingering_done_bridge_is_killed() {
        let script = ShellScript::new("exec sleep 30");
        let bridge = Bridge::spawn(&script.command(), &ids()).expect("sh spawns");
        let started = std::time::Instant::now();
        assert_eq!(bridge.shutdown(true).await, None, "not exited in 250 ms");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
