//! Writes the OpenAPI document of the gateway and controller REST edges.
//!
//! ```text
//! pecr-openapi [--check] [--out PATH]
//! ```
//!
//! Without `--out` the document goes to `docs/openapi/pecr.v1.yaml` in this
//! checkout. With `--check` nothing is written: exit 0 when the file is up
//! to date, 1 when it is stale or missing. Exit 2 on bad arguments or I/O
//! errors.

use std::path::PathBuf;
use std::process::ExitCode;

use pecr_proto::service_names::{CONTROLLER, GATEWAY};

const DEFAULT_OUT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/openapi/pecr.v1.yaml"
);

fn main() -> ExitCode {
    let mut check = false;
    let mut out = PathBuf::from(DEFAULT_OUT);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--check" => check = true,
            "--out" => match args.next() {
                Some(path) => out = PathBuf::from(path),
                None => return usage("--out needs a path"),
            },
            "-h" | "--help" => {
                println!("usage: pecr-openapi [--check] [--out PATH]");
                return ExitCode::SUCCESS;
            }
            other => return usage(&format!("unknown argument {other}")),
        }
    }

    let document = match prost_reflect::DescriptorPool::decode(pecr_proto::FILE_DESCRIPTOR_SET)
        .map_err(|err| err.to_string())
        .and_then(|pool| {
            pecr_edge::openapi_document(&pool, &[GATEWAY, CONTROLLER]).map_err(|e| e.to_string())
        }) {
        Ok(document) => document,
        Err(err) => {
            eprintln!("pecr-openapi: {err}");
            return ExitCode::from(2);
        }
    };

    if check {
        return match std::fs::read_to_string(&out) {
            Ok(current) if current == document => ExitCode::SUCCESS,
            Ok(_) => {
                eprintln!(
                    "pecr-openapi: {} is stale; run `cargo run -p pecr-edge --bin pecr-openapi`",
                    out.display()
                );
                ExitCode::from(1)
            }
            Err(err) => {
                eprintln!("pecr-openapi: cannot read {}: {err}", out.display());
                ExitCode::from(1)
            }
        };
    }

    if let Some(parent) = out.parent()
        && let Err(err) = std::fs::create_dir_all(parent)
    {
        eprintln!("pecr-openapi: cannot create {}: {err}", parent.display());
        return ExitCode::from(2);
    }
    match std::fs::write(&out, document) {
        Ok(()) => {
            println!("wrote {}", out.display());
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("pecr-openapi: cannot write {}: {err}", out.display());
            ExitCode::from(2)
        }
    }
}

fn usage(problem: &str) -> ExitCode {
    eprintln!("pecr-openapi: {problem}\nusage: pecr-openapi [--check] [--out PATH]");
    ExitCode::from(2)
}
