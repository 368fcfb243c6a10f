//! `pecr-devcerts [DIR]`: writes a throw-away CA and one certificate per
//! service into DIR (default `target/dev/tls`), for `scripts/dev-up.sh --tls`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let dir = match (args.next(), args.next()) {
        (None, _) => PathBuf::from("target/dev/tls"),
        (Some(flag), _) if flag == "-h" || flag == "--help" => {
            println!(
                "usage: pecr-devcerts [DIR]\n\n\
                 Writes DIR/ca.pem and DIR/<service>.pem, DIR/<service>.key for {} \
                 (default DIR: target/dev/tls). Development only: a new CA every run.",
                pecr_devcerts::SERVICES.join(", ")
            );
            return ExitCode::SUCCESS;
        }
        (Some(dir), None) => PathBuf::from(dir),
        (Some(_), Some(_)) => {
            eprintln!("usage: pecr-devcerts [DIR]");
            return ExitCode::from(2);
        }
    };
    match pecr_devcerts::write_mesh(&dir) {
        Ok(files) => {
            println!("CA          {}", files.ca.display());
            for (service, cert, key) in files.services {
                println!("{service:<19} {} {}", cert.display(), key.display());
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("pecr-devcerts: {err}");
            ExitCode::FAILURE
        }
    }
}
