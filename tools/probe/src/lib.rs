//! One HTTP/1.1 GET against a service's own admin port, for container
//! health checks. The runtime images carry no shell and no curl, so the
//! probe is a binary of its own, with nothing but the standard library.
//!
//! Only the status line is read: the verdict is the status code, and a
//! body that never ends cannot keep the probe waiting.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The path every PECR service answers with its readiness (200 or 503).
pub const READY_PATH: &str = "/readyz";

/// The whole exchange must finish within this. Readiness checks are cut off
/// after 3 s on the server side, so a slow dependency still yields an answer
/// (503) first; the health checks' own timeout (5 s) stays above it.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4);

/// A status line longer than this is not from a PECR service.
const MAX_STATUS_LINE: usize = 1024;

/// Why no status code was read.
#[derive(Debug)]
pub enum ProbeError {
    /// The connection could not be opened (refused, unreachable).
    Connect(io::Error),
    /// Reading or writing failed after the connection was open.
    Io(io::Error),
    /// The deadline passed before a whole status line arrived.
    TimedOut,
    /// The peer closed the connection before sending a status line.
    Closed,
    /// The first line was not an HTTP/1.x status line.
    Malformed(String),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(err) => write!(f, "cannot connect: {err}"),
            Self::Io(err) => write!(f, "i/o error: {err}"),
            Self::TimedOut => f.write_str("timed out"),
            Self::Closed => f.write_str("connection closed before a status line"),
            Self::Malformed(line) => write!(f, "not an HTTP/1.x status line: {line:?}"),
        }
    }
}

impl std::error::Error for ProbeError {}

/// The loopback address of `port`: a probe runs beside the service, in its
/// container, so it never leaves the network namespace.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Parses the probe's argument: a TCP port, 1 to 65535.
pub fn parse_port(arg: &str) -> Result<u16, String> {
    match arg.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("not a port (1-65535): {arg:?}")),
        Ok(port) => Ok(port),
    }
}

/// Sends `GET path` to `addr` and returns the response's status code, all
/// within `timeout`.
pub fn get_status(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&addr, remaining(deadline)?).map_err(|err| {
        match err.kind() {
            io::ErrorKind::TimedOut => ProbeError::TimedOut,
            _ => ProbeError::Connect(err),
        }
    })?;
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(ProbeError::Io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: pecr-probe\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io_error)?;
    let line = read_status_line(&mut stream, deadline)?;
    parse_status_line(&line)
}

/// Reads up to the first CRLF, refreshing the read timeout from the one
/// deadline so a peer that trickles bytes cannot stretch the wait.
fn read_status_line(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, ProbeError> {
    let mut line = Vec::with_capacity(64);
    let mut chunk = [0_u8; 256];
    loop {
        if let Some(end) = line.windows(2).position(|pair| pair == b"\r\n") {
            line.truncate(end);
            return Ok(line);
        }
        if line.len() > MAX_STATUS_LINE {
            return Err(ProbeError::Malformed(lossy(&line[..MAX_STATUS_LINE])));
        }
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(ProbeError::Io)?;
        match stream.read(&mut chunk) {
            Ok(0) if line.is_empty() => return Err(ProbeError::Closed),
            Ok(0) => return Err(ProbeError::Malformed(lossy(&line))),
            Ok(read) => line.extend_from_slice(&chunk[..read]),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(io_error(err)),
        }
    }
}

/// The code of a status line such as `HTTP/1.1 200 OK`.
pub fn parse_status_line(line: &[u8]) -> Result<u16, ProbeError> {
    let malformed = || ProbeError::Malformed(lossy(line));
    let text = std::str::from_utf8(line).map_err(|_| malformed())?;
    let mut parts = text.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    let code = parts.next().unwrap_or_default();
    if !matches!(version, "HTTP/1.0" | "HTTP/1.1")
        || code.len() != 3
        || !code.bytes().all(|byte| byte.is_ascii_digit())
    {
        return Err(malformed());
    }
    code.parse().map_err(|_| malformed())
}

fn remaining(deadline: Instant) -> Result<Duration, ProbeError> {
    // A zero timeout means "block forever" to the socket calls, so an
    // exhausted deadline must stop here.
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(ProbeError::TimedOut),
    }
}

fn io_error(err: io::Error) -> ProbeError {
    match err.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ProbeError::TimedOut,
        _ => ProbeError::Io(err),
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        let cases: &[(&[u8], Option<u16>)] = &[
            (b"HTTP/1.1 200 OK", Some(200)),
            (b"HTTP/1.0 503 Service Unavailable", Some(503)),
            (b"HTTP/1.1 204", Some(204)),
            (b"HTTP/2 200", None),
            (b"HTTP/1.1 20 OK", None),
            (b"HTTP/1.1 2000 OK", None),
            (b"HTTP/1.1 +20 OK", None),
            (b"SSH-2.0-OpenSSH", None),
            (b"", None),
            (b"HTTP/1.1 \xff\xfe", None),
        ];
        for (line, want) in cases {
            let got = parse_status_line(line).ok();
            assert_eq!(
                got,
                *want,
                "status line {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("8080"), Ok(8080));
        assert_eq!(parse_port("65535"), Ok(65535));
        for bad in ["0", "65536", "-1", "", "80a", " 80"] {
            assert!(parse_port(bad).is_err(), "{bad:?} accepted");
        }
    }
}
