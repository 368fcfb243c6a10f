//! `PECR_MCP_ALLOWED_HOSTS`, read the same way by both services with an
//! MCP server.

use pecr_config::{ConfigReader, StartupError};

/// `Host` header values `/mcp` answers: a comma-separated list of names or
/// `name:port`, or `*` for any.
pub const MCP_ALLOWED_HOSTS: &str = "PECR_MCP_ALLOWED_HOSTS";

/// The loopback names: a page a browser loaded from elsewhere cannot reach
/// a local server by rebinding its own name to 127.0.0.1.
pub const DEFAULT_ALLOWED_HOSTS: &str = "localhost,127.0.0.1,::1";

/// Reads [`MCP_ALLOWED_HOSTS`]; empty means any host. A bad entry is
/// reported with the other configuration errors.
pub fn read_allowed_hosts(reader: &mut ConfigReader<'_>) -> Vec<String> {
    let raw = reader.string(MCP_ALLOWED_HOSTS, DEFAULT_ALLOWED_HOSTS);
    parse_allowed_hosts(&raw).unwrap_or_else(|reason| {
        reader.push_error(StartupError::invalid(format!(
            "{MCP_ALLOWED_HOSTS}: {reason}"
        )));
        Vec::new()
    })
}

fn parse_allowed_hosts(raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.trim();
    if raw == "*" {
        return Ok(Vec::new());
    }
    let hosts: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(str::to_owned)
        .collect();
    if hosts.is_empty() {
        return Err("list at least one host, or * for any".to_owned());
    }
    for host in &hosts {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let valid = http::uri::Authority::try_from(host.as_str()).is_ok()
            || bare.parse::<std::net::IpAddr>().is_ok();
        if !valid || host.contains(['/', '@', '*']) {
            return Err(format!("{host:?} is not a host name or host:port"));
        }
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_a_list_or_any() {
        assert_eq!(
            parse_allowed_hosts(DEFAULT_ALLOWED_HOSTS),
            Ok(vec!["localhost".into(), "127.0.0.1".into(), "::1".into()])
        );
        assert_eq!(parse_allowed_hosts(" * "), Ok(vec![]));
        assert_eq!(
            parse_allowed_hosts("pecr.example.com, gw:8080"),
            Ok(vec!["pecr.example.com".into(), "gw:8080".into()])
        );
        assert!(parse_allowed_hosts(" , ").is_err());
        assert!(parse_allowed_hosts("http://x").is_err());
        assert!(parse_allowed_hosts("a b").is_err());
        assert!(parse_allowed_hosts("*.example.com").is_err());
    }
}
