//! Prints the bundle hash of a policy bundle directory, for scripts that set
//! `PECR_POLICY_BUNDLE_HASH`: `pecr-policy-hash opa/bundle`.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: pecr-policy-hash <bundle-dir>");
        return ExitCode::from(2);
    };
    let dir = PathBuf::from(dir);
    match pecr_policy::bundle_hash(&dir) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pecr-policy-hash: {}: {error}", dir.display());
            ExitCode::FAILURE
        }
    }
}
