//! The security gate's OIDC issuer, for the gate script:
//!
//!   pecr-gate-issuer keys DIR                  a new RSA key and its JWKS in DIR
//!   pecr-gate-issuer settings DIR              prints the services' OIDC settings, KEY=VALUE a line
//!   pecr-gate-issuer token DIR SUB [TENANT]    prints a token for SUB (tenant `local`)

use std::path::Path;

use pecr_security_tests::{claims_for, issuer};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["keys", dir] => issuer::generate(Path::new(dir)),
        ["settings", dir] => issuer::service_settings(Path::new(dir)).map(|settings| {
            for (key, value) in settings {
                println!("{key}={value}");
            }
        }),
        ["token", dir, sub] => token(dir, sub, "local"),
        ["token", dir, sub, tenant] => token(dir, sub, tenant),
        _ => Err(
            "usage: pecr-gate-issuer keys DIR | settings DIR | token DIR SUB [TENANT]".to_owned(),
        ),
    };
    if let Err(message) = result {
        eprintln!("pecr-gate-issuer: {message}");
        std::process::exit(2);
    }
}

fn token(dir: &str, sub: &str, tenant: &str) -> Result<(), String> {
    let key = issuer::load_signing_key(Path::new(dir))?;
    println!("{}", issuer::sign(&key, &claims_for(sub, tenant, "eng")));
    Ok(())
}
