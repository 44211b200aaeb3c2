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

/// A `redis://` or `rediss://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(Url);

impl RedisUrl {
    /// The full URL, password included: for connecting only, never for printing.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn redacted(&self) -> String {
        redact(&self.0)
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
        let url = Url::parse(s.trim())
            .map_err(|e| format!("not a valid URL ({e}): expected redis://<host>[:<port>][/<db>]"))?;
        match url.scheme() {
            "redis" | "rediss" => Ok(RedisUrl(url)),
            other => {
                Err(format!("scheme `{other}` is not supported: expected redis://<host>[:<port>][/<db>] or rediss://"))
            }
        }
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
    }
}
