//! PECR binaries as child processes, on ports they pick themselves.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The repository root.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|err| panic!("workspace root: {err}"))
}

/// A built workspace binary, next to the running test's `deps/` folder.
pub fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|err| panic!("current_exe: {err}"));
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap_or_else(|| panic!("unexpected test binary location {}", exe.display()));
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A pinned tool installed by `scripts/tools.sh` (or `PECR_<TOOL>` if set).
pub fn tool_path(name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(format!("PECR_{}", name.to_ascii_uppercase())) {
        return PathBuf::from(path);
    }
    let path = workspace_root().join(".tools/venv/bin").join(name);
    assert!(
        path.exists(),
        "{} is missing; run scripts/tools.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A running service binary, killed when dropped.
pub struct ServiceProcess {
    child: Child,
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    stderr_lines: tokio::sync::mpsc::UnboundedReceiver<String>,
}

/// What a process printed before it exited.
pub struct ExitReport {
    pub code: Option<i32>,
    pub stderr: String,
}

impl ServiceProcess {
    /// Starts `binary` with only `env` (plus PATH) and waits for its
    /// `PECR_LISTENING` line.
    pub async fn start(binary: &str, env: &[(&str, String)]) -> Self {
        let mut child = Self::command(binary, env)
            .spawn()
            .unwrap_or_else(|err| panic!("spawn {binary}: {err}"));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("{binary} stdout"));
        let stderr_lines = forward_lines(
            child
                .stderr
                .take()
                .unwrap_or_else(|| panic!("{binary} stderr")),
        );
        let mut lines = BufReader::new(stdout).lines();
        let listening = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("PECR_LISTENING ") {
                    return Some(line);
                }
            }
            None
        })
        .await
        .ok()
        .flatten();
        let Some(line) = listening else {
            let _ = child.start_kill();
            let mut report = String::new();
            let mut stderr_lines = stderr_lines;
            while let Ok(Some(line)) =
                tokio::time::timeout(Duration::from_millis(500), stderr_lines.recv()).await
            {
                report.push_str(&line);
                report.push('\n');
            }
            panic!("{binary} did not start:\n{report}");
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(key))
                .and_then(|value| value.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        Self {
            grpc_addr: addr("grpc="),
            http_addr: addr("http="),
            child,
            stderr_lines,
        }
    }

    /// Runs `binary` expecting it to fail at start-up, and reports how.
    pub async fn run_to_exit(binary: &str, env: &[(&str, String)]) -> ExitReport {
        let output = tokio::time::timeout(START_TIMEOUT, Self::command(binary, env).output())
            .await
            .unwrap_or_else(|_| panic!("{binary} did not exit"))
            .unwrap_or_else(|err| panic!("run {binary}: {err}"));
        ExitReport {
            code: output.status.code(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn command(binary: &str, env: &[(&str, String)]) -> Command {
        let mut command = Command::new(binary_path(binary));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub fn http_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http_addr)
    }

    /// Every stderr line so far (structured logs).
    pub fn drain_stderr(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Ok(line) = self.stderr_lines.try_recv() {
            lines.push(line);
        }
        lines
    }

    /// Stops the process and waits for it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn forward_lines(
    stream: impl AsyncRead + Unpin + Send + 'static,
) -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl ServiceProcess {
    /// Polls `/readyz` until it answers 200; panics with the last body after 20 s.
    pub async fn wait_ready(&self) {
        let url = self.http_url("/readyz");
        let mut last = String::new();
        for _ in 0..80 {
            let answer = crate::http_get(&url).await;
            if answer.status == 200 {
                return;
            }
            last = answer.body;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("{url} never became ready; last answer: {last}");
    }
}

impl ServiceProcess {
    /// Sends SIGTERM and waits (up to 10 s) for the exit code.
    pub async fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id()?;
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(Ok(status)) => status.code(),
            _ => None,
        }
    }
}
