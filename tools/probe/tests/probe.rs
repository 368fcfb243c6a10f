//! The probe against real TCP listeners on loopback: what it sends, the
//! verdict for each kind of answer, and the binary's exit codes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use pecr_probe::{ProbeError, READY_PATH, get_status};

const TIMEOUT: Duration = Duration::from_secs(10);

fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("local addr");
    (listener, addr)
}

/// Reads one request head (up to the blank line) and returns it.
fn read_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0_u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) | Err(_) => break,
            Ok(_) => head.push(byte[0]),
        }
    }
    String::from_utf8(head).expect("utf-8 request head")
}

/// Answers one connection with `response` and returns the request head.
fn answer_once(response: &'static [u8]) -> (SocketAddr, JoinHandle<String>) {
    let (listener, addr) = listener();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let head = read_head(&mut stream);
        stream.write_all(response).expect("write response");
        head
    });
    (addr, server)
}

/// Accepts one connection and holds it open, silent, until `release` drops.
fn silent() -> (SocketAddr, mpsc::Sender<()>, JoinHandle<()>) {
    let (listener, addr) = listener();
    let (release, released) = mpsc::channel::<()>();
    let server = thread::spawn(move || {
        let (_stream, _) = listener.accept().expect("accept");
        let _ = released.recv();
    });
    (addr, release, server)
}

#[test]
fn sends_a_plain_get_of_readyz_and_reads_200() {
    let (addr, server) = answer_once(
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 18\r\n\r\n{\"status\":\"ready\"}",
    );
    let status = get_status(addr, READY_PATH, TIMEOUT).expect("status");
    assert_eq!(status, 200);

    let head = server.join().expect("server");
    let mut lines = head.split("\r\n");
    assert_eq!(lines.next(), Some("GET /readyz HTTP/1.1"));
    let headers: Vec<&str> = lines.filter(|line| !line.is_empty()).collect();
    assert!(
        headers.contains(&format!("Host: {addr}").as_str()),
        "{headers:?}"
    );
    assert!(headers.contains(&"Connection: close"), "{headers:?}");
}

#[test]
fn reports_the_code_of_a_service_that_is_not_ready() {
    let (addr, server) = answer_once(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 22\r\n\r\n{\"status\":\"not_ready\"}",
    );
    assert_eq!(get_status(addr, READY_PATH, TIMEOUT).expect("status"), 503);
    server.join().expect("server");
}

#[test]
fn refuses_answers_that_are_not_http() {
    let cases: &[(&'static [u8], &str)] = &[
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not HTTP"),
        (b"HTTP/1.1 200", "closed before the line ended"),
        (b"", "closed at once"),
    ];
    for (response, case) in cases {
        let (addr, server) = answer_once(response);
        let result = get_status(addr, READY_PATH, TIMEOUT);
        assert!(
            matches!(result, Err(ProbeError::Malformed(_) | ProbeError::Closed)),
            "{case}: {result:?}"
        );
        server.join().expect("server");
    }
}

#[test]
fn gives_up_on_a_silent_peer_at_the_deadline() {
    let (addr, release, server) = silent();
    let result = get_status(addr, READY_PATH, Duration::from_millis(200));
    assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
    drop(release);
    server.join().expect("server");
}

#[test]
fn a_trickling_peer_cannot_stretch_the_deadline() {
    let (listener, addr) = listener();
    let server = thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        read_head(&mut stream);
        // One byte at a time, never a whole line: each read succeeds well
        // within any per-read timeout, so only the overall deadline ends it.
        for byte in b"HTTP/1.1 200 OK".iter().cycle() {
            if stream.write_all(&[*byte]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
    });
    let result = get_status(addr, READY_PATH, Duration::from_millis(300));
    assert!(matches!(result, Err(ProbeError::TimedOut)), "{result:?}");
    server.join().expect("server");
}

#[test]
fn nothing_listening_is_a_connect_error() {
    let (listener, addr) = listener();
    drop(listener);
    let result = get_status(addr, READY_PATH, TIMEOUT);
    assert!(matches!(result, Err(ProbeError::Connect(_))), "{result:?}");
}

fn run_probe(args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_pecr-probe"))
        .args(args)
        .output()
        .expect("run pecr-probe");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[test]
fn the_binary_exits_0_only_on_200() {
    let (addr, server) = answer_once(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    let port = addr.port().to_string();
    assert_eq!(run_probe(&[&port]).0, Some(0));
    server.join().expect("server");

    let (addr, server) =
        answer_once(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
    let port = addr.port().to_string();
    let (code, text) = run_probe(&[&port]);
    assert_eq!(code, Some(1));
    assert!(text.contains("503"), "{text}");
    server.join().expect("server");

    for args in [&[][..], &["0"][..], &["http"][..], &["8080", "8081"][..]] {
        let (code, text) = run_probe(args);
        assert_eq!(code, Some(1), "{args:?}: {text}");
    }
}

/// The probe ships in every image beside the service: the standard library
/// is all it may bring, so its manifest names no dependency of any kind.
#[test]
fn depends_on_nothing_but_std() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("read Cargo.toml");
    for line in manifest.lines() {
        let section = line.trim();
        assert!(
            !(section.starts_with('[') && section.contains("dependencies")),
            "pecr-probe declares {section}"
        );
    }
}
