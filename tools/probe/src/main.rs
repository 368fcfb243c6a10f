//! `pecr-probe PORT`: exit 0 when http://127.0.0.1:PORT/readyz answers 200,
//! 1 otherwise. Used as the images' HEALTHCHECK and compose's healthcheck.

use std::process::ExitCode;

use pecr_probe::{DEFAULT_TIMEOUT, READY_PATH, get_status, loopback, parse_port};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let port = match (args.next(), args.next()) {
        (Some(arg), None) => match parse_port(&arg) {
            Ok(port) => port,
            Err(err) => return fail(&err),
        },
        _ => return fail("usage: pecr-probe PORT"),
    };
    // The health check's log keeps this line, so it says what was asked.
    match get_status(loopback(port), READY_PATH, DEFAULT_TIMEOUT) {
        Ok(200) => {
            println!("{READY_PATH} on port {port}: 200");
            ExitCode::SUCCESS
        }
        Ok(code) => fail(&format!("{READY_PATH} on port {port}: {code}")),
        Err(err) => fail(&format!("{READY_PATH} on port {port}: {err}")),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("pecr-probe: {message}");
    ExitCode::FAILURE
}
