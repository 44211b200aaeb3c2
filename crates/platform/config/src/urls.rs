//! Connection URLs. They may carry passwords, so their `Debug` and `Display` never show one:
//! anything printed or logged goes through [`redact`].

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// Replaces the password of a URL with `***`.
pub fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Where a service keeps its records.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum DatabaseUrl {
    /// `sqlite`: one SQLite file per service under the data folder (the default).
    #[default]
    Embedded,
    /// `sqlite://<path>`: this SQLite file (for a per-service override).
    SqliteFile(PathBuf),
    /// `postgres://user:password@host:port/database`: a schema per service in this database.
    Postgres(Url),
}

pub const DATABASE_URL_FORMS: &str =
    "`sqlite`, `sqlite://<file>` or `postgres://<user>[:<password>]@<host>[:<port>]/<database>`";

impl DatabaseUrl {
    pub fn is_postgres(&self) -> bool {
        matches!(self, DatabaseUrl::Postgres(_))
    }

    /// The URL with its password hidden, fit for logs and error messages.
    pub fn redacted(&self) -> String {
        match self {
            DatabaseUrl::Embedded => "sqlite".to_owned(),
            DatabaseUrl::SqliteFile(path) => format!("sqlite://{}", path.display()),
            DatabaseUrl::Postgres(url) => redact(url),
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if matches!(s, "sqlite" | "sqlite:" | "sqlite://") {
            return Ok(DatabaseUrl::Embedded);
        }
        if let Some(path) = s.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or(path);
            return Ok(DatabaseUrl::SqliteFile(PathBuf::from(path)));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            let url = Url::parse(s).map_err(|e| format!("not a valid PostgreSQL URL ({e})"))?;
            if url.host_str().is_none_or(str::is_empty) {
                return Err("a PostgreSQL URL needs a host".to_owned());
            }
            if url.path().trim_start_matches('/').is_empty() {
                return Err("a PostgreSQL URL needs a database name after the host".to_owned());
            }
            return Ok(DatabaseUrl::Postgres(url));
        }
        Err(format!("expected {DATABASE_URL_FORMS}"))
    }
}

/// Serialised with the password hidden: used by `medcov config show`.
impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// Where Redis is: one `redis://` or `rediss://` URL, or several separated by commas, the seed
/// nodes of a Redis Cluster (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`).
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// As written, passwords included: for connecting only, never for printing.
    text: String,
    nodes: Vec<Url>,
}

const REDIS_URL_FORMS: &str = "expected redis://[:<password>@]<host>[:<port>][/<db>] (or rediss://), or several of them separated by \
     commas for the seed nodes of a Redis Cluster";

impl RedisUrl {
    /// The URL as configured (several, comma-separated, for a cluster), password included: for
    /// connecting only, never for printing.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// Each node named, passwords included: for connecting only.
    pub fn nodes(&self) -> &[Url] {
        &self.nodes
    }

    /// Whether several nodes are named: then they are the seed nodes of a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.nodes.len() > 1
    }

    pub fn redacted(&self) -> String {
        self.nodes.iter().map(redact).collect::<Vec<_>>().join(",")
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl FromStr for RedisUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut nodes = Vec::new();
        for part in s.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(format!("an empty node in the list: {REDIS_URL_FORMS}"));
            }
            let url = Url::parse(part)
                .map_err(|e| format!("`{}` is not a valid URL ({e}): {REDIS_URL_FORMS}", part_redacted(part)))?;
            match url.scheme() {
                "redis" | "rediss" => {}
                other => return Err(format!("scheme `{other}` is not supported: {REDIS_URL_FORMS}")),
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err(format!("`{}` names no host: {REDIS_URL_FORMS}", redact(&url)));
            }
            nodes.push(url);
        }
        if nodes.len() > 1 {
            if nodes.iter().any(|n| n.scheme() != nodes[0].scheme()) {
                return Err("the seed nodes of a cluster must all be redis:// or all rediss://".to_owned());
            }
            // A cluster has database 0 only.
            if let Some(node) = nodes.iter().find(|n| !matches!(n.path(), "" | "/" | "/0")) {
                return Err(format!(
                    "`{}` names a database: a Redis Cluster has database 0 only, so leave the path out",
                    redact(node)
                ));
            }
        }
        Ok(RedisUrl { text: nodes.iter().map(Url::as_str).collect::<Vec<_>>().join(","), nodes })
    }
}

/// A part that did not parse as a URL, without what could be a password.
fn part_redacted(part: &str) -> String {
    match part.rsplit_once('@') {
        Some((_, host)) => format!("…@{host}"),
        None => part.to_owned(),
    }
}

impl Serialize for RedisUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for RedisUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_parse_into_their_backend() {
        assert_eq!("sqlite".parse::<DatabaseUrl>().unwrap(), DatabaseUrl::Embedded);
        assert_eq!(
            "sqlite:///var/lib/medcov/h.db".parse::<DatabaseUrl>().unwrap(),
            DatabaseUrl::SqliteFile("/var/lib/medcov/h.db".into())
        );
        assert!("postgres://postgres@127.0.0.1:5432/medcov".parse::<DatabaseUrl>().unwrap().is_postgres());
    }

    #[test]
    fn bad_database_urls_say_what_is_accepted() {
        let err = "mysql://root@localhost/medcov".parse::<DatabaseUrl>().unwrap_err();
        assert!(err.contains("postgres://"), "{err}");
        let err = "postgres://127.0.0.1".parse::<DatabaseUrl>().unwrap_err();
        assert!(err.contains("database name"), "{err}");
    }

    #[test]
    fn passwords_never_print() {
        let url: DatabaseUrl = "postgres://medcov:s3cret@db:5432/medcov".parse().unwrap();
        assert!(!format!("{url}").contains("s3cret"));
        assert!(!format!("{url:?}").contains("s3cret"));
        let redis: RedisUrl = "redis://:hunter2@cache:6379/0".parse().unwrap();
        assert!(!format!("{redis:?}").contains("hunter2"));
        assert!(redis.expose().contains("hunter2"));
        let cluster: RedisUrl = "redis://:pw1@a:7000, redis://:pw1@b:7001".parse().unwrap();
        assert_eq!(cluster.redacted(), "redis://:***@a:7000,redis://:***@b:7001");
        assert!(!format!("{cluster:?}").contains("pw1"));
    }

    #[test]
    fn several_redis_urls_are_the_seeds_of_a_cluster() {
        let one: RedisUrl = "redis://127.0.0.1:6379/2".parse().unwrap();
        assert!(!one.is_cluster());
        assert_eq!(one.nodes().len(), 1);
        let cluster: RedisUrl = "redis://a:7000,redis://b:7001,redis://c:7002".parse().unwrap();
        assert!(cluster.is_cluster());
        assert_eq!(cluster.expose(), "redis://a:7000,redis://b:7001,redis://c:7002");
        assert_eq!(cluster.nodes()[1].port(), Some(7001));
    }

    #[test]
    fn bad_redis_urls_say_what_is_accepted() {
        for (text, says) in [
            ("http://cache:6379", "scheme `http`"),
            ("redis://a:7000,", "empty node"),
            ("redis://a:7000,rediss://b:7001", "be redis:// or all rediss://"),
            ("redis://a:7000/1,redis://b:7001", "database 0 only"),
            ("cache:6379", "not supported"),
        ] {
            let err = text.parse::<RedisUrl>().unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }
}
