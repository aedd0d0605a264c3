//! The location of a Redis shelf: `redis://[user:password@]host[:port][/db][?options]`,
//! parsed by hand so the options of shelf are taken off before the rest is
//! handed to the `redis` crate, and so the credentials can be left out of
//! every message.

use std::time::Duration;

/// The URL schemes this backend claims.
pub const SCHEMES: &[&str] = &["redis", "rediss"];

/// The namespace of a URL that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The connect and response timeout of a URL that names none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// A parsed shelf URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// `redis` or `rediss`.
    pub scheme: String,
    /// `user:password` or `:password`, kept only for the connection.
    credentials: Option<String>,
    /// `host[:port]`.
    pub host: String,
    /// The database number (`/N`; 0 where none is given).
    pub db: u32,
    /// The shelf's namespace (`?namespace=`).
    pub namespace: String,
    /// Connect and response timeout (`?timeout=` in seconds).
    pub timeout: Duration,
    /// Replicas that must acknowledge a sync (`?replicas=N`, or `?wait=1`).
    pub replicas: u32,
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Debug output reaches logs and panics: redacted like Display.
        write!(f, "RedisUrl({self})")
    }
}

/// Why a URL is not a shelf URL (never quoting its credentials).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid redis URL {url}: {reason}")]
pub struct UrlError {
    /// The URL, redacted.
    pub url: String,
    /// What is wrong.
    pub reason: String,
}

/// `text` with any `user:password@` replaced by `***@`, for messages about a
/// string that may or may not parse as a URL.
pub fn redact(text: &str) -> String {
    // `scheme://` or, mistyped, `scheme:`: the credentials are what comes
    // before the last `@` of the authority either way.
    let (scheme, sep, rest) = match text.split_once("://") {
        Some((scheme, rest)) => (scheme, "://", rest),
        None => match text.split_once(':') {
            Some((scheme, rest)) => (scheme, ":", rest),
            None => return text.to_owned(),
        },
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}{sep}***@{}", &rest[at + 1..]),
        None => text.to_owned(),
    }
}

impl RedisUrl {
    /// Parses `text`.
    ///
    /// # Errors
    /// A scheme other than `redis`/`rediss`, a bad port, database number,
    /// namespace or option.
    pub fn parse(text: &str) -> Result<Self, UrlError> {
        let bad = |reason: String| UrlError { url: redact(text), reason };
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme".into()))?;
        if !SCHEMES.contains(&scheme) {
            return Err(bad(format!("scheme '{scheme}' is not one of {}", SCHEMES.join(", "))));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((b, q)) => (b, q),
            None => (rest, ""),
        };
        let (authority, path) = match before_query.split_once('/') {
            Some((a, p)) => (a, p),
            None => (before_query, ""),
        };
        let (credentials, host) = match authority.rfind('@') {
            Some(at) => (Some(authority[..at].to_owned()), &authority[at + 1..]),
            None => (None, authority),
        };
        let host = if host.is_empty() { "127.0.0.1:6379".to_owned() } else { host.to_owned() };
        if let Some((_, port)) = host.rsplit_once(':')
            && !host.ends_with(']')
            && port.parse::<u16>().is_err()
        {
            return Err(bad(format!("port '{port}' is not a number from 0 to 65535")));
        }
        let path = path.trim_end_matches('/');
        let db = if path.is_empty() {
            0
        } else {
            path.parse().map_err(|_| bad(format!("database '{path}' is not a number")))?
        };
        let mut url = RedisUrl {
            scheme: scheme.to_owned(),
            credentials,
            host,
            db,
            namespace: DEFAULT_NAMESPACE.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            replicas: 0,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "namespace" => {
                    check_namespace(value).map_err(bad)?;
                    value.clone_into(&mut url.namespace);
                }
                "timeout" => {
                    let secs: f64 =
                        value.parse().map_err(|_| bad(format!("timeout '{value}' is not seconds")))?;
                    if !(secs > 0.0 && secs <= 3600.0) {
                        return Err(bad(format!("timeout {value} is not within (0, 3600] seconds")));
                    }
                    url.timeout = Duration::from_secs_f64(secs);
                }
                "replicas" | "wait" => {
                    url.replicas = value
                        .parse()
                        .map_err(|_| bad(format!("{name} '{value}' is not a count of replicas")))?;
                }
                other => {
                    return Err(bad(format!(
                        "unknown option '{other}' (known: namespace, timeout, replicas, wait)"
                    )));
                }
            }
        }
        Ok(url)
    }

    /// The URL for the `redis` crate: scheme, credentials, host and
    /// database, without shelf's options.
    pub(crate) fn connection_url(&self) -> String {
        let creds = self.credentials.as_deref().map(|c| format!("{c}@")).unwrap_or_default();
        format!("{}://{creds}{}/{}", self.scheme, self.host, self.db)
    }

    /// The password (or whole credentials), so that messages from the
    /// server or the client can be scrubbed of it.
    pub(crate) fn secret(&self) -> Option<&str> {
        let c = self.credentials.as_deref()?;
        let secret = c.split_once(':').map_or(c, |(_, p)| p);
        (!secret.is_empty()).then_some(secret)
    }

    /// `host:port` (with `***@` in front when credentials were given).
    pub fn host_redacted(&self) -> String {
        if self.credentials.is_some() { format!("***@{}", self.host) } else { self.host.clone() }
    }
}

/// Shows the URL without its credentials.
impl std::fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}/{}?namespace={}", self.scheme, self.host_redacted(), self.db, self.namespace)?;
        if self.timeout != DEFAULT_TIMEOUT {
            write!(f, "&timeout={}", self.timeout.as_secs_f64())?;
        }
        if self.replicas > 0 {
            write!(f, "&replicas={}", self.replicas)?;
        }
        Ok(())
    }
}

/// Namespaces are kept to characters that cannot form a Redis Cluster hash
/// tag (`{`, `}`) or the bucket separator (`/`), so that no namespace's keys
/// can be another's.
fn check_namespace(ns: &str) -> Result<(), String> {
    let ok = !ns.is_empty()
        && ns.len() <= 200
        && ns.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'));
    if ok { Ok(()) } else { Err(format!("namespace '{ns}' must be 1 to 200 of A-Z a-z 0-9 _ - . :")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_redacts() {
        let u = RedisUrl::parse("redis://bob:s3cret@127.0.0.1:7000/2?namespace=app&timeout=1.5&replicas=1")
            .unwrap();
        assert_eq!(
            (u.host.as_str(), u.db, u.namespace.as_str(), u.replicas),
            ("127.0.0.1:7000", 2, "app", 1)
        );
        assert_eq!(u.timeout, Duration::from_millis(1500));
        let shown = format!("{u} {u:?} {}", u.host_redacted());
        assert!(!shown.contains("s3cret") && !shown.contains("bob"), "{shown}");
        assert_eq!(u.connection_url(), "redis://bob:s3cret@127.0.0.1:7000/2");
        assert_eq!(u.secret(), Some("s3cret"));
        let d = RedisUrl::parse("redis://localhost").unwrap();
        assert_eq!((d.host.as_str(), d.db, d.namespace.as_str()), ("localhost", 0, DEFAULT_NAMESPACE));
    }

    #[test]
    fn refuses_bad_urls_without_quoting_secrets() {
        for bad in [
            "redis://u:pw@h:99999/",
            "redis://u:pw@h/x",
            "redis://u:pw@h/?namespace=a{b}",
            "redis://u:pw@h/?nope=1",
            "http://u:pw@h/",
            "redis://u:pw@h/?timeout=0",
        ] {
            let e = RedisUrl::parse(bad).unwrap_err().to_string();
            assert!(!e.contains("pw"), "{e}");
        }
        assert_eq!(redact("redis://a:b@h:1/0?x"), "redis://***@h:1/0?x");
        assert_eq!(redact("/plain/path"), "/plain/path");
        assert_eq!(redact("/home/a@b/db"), "/home/a@b/db");
        assert_eq!(redact("redis:u:pw@h:1/0"), "redis:***@h:1/0");
    }
}
