//! The five MedCov services, the order they start in, and how a `--target` list is read.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One of the five services. The declaration order is the start order: each service starts
/// after the ones it calls, and they stop in reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    Auth,
    Hospital,
    Insurance,
    Billing,
    Gateway,
}

impl ServiceName {
    /// Every service, in start order.
    pub const ALL: [ServiceName; 5] =
        [ServiceName::Auth, ServiceName::Hospital, ServiceName::Insurance, ServiceName::Billing, ServiceName::Gateway];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Gateway => "gateway",
            ServiceName::Auth => "auth",
            ServiceName::Hospital => "hospital",
            ServiceName::Insurance => "insurance",
            ServiceName::Billing => "billing",
        }
    }

    /// The port a service listens on unless configured otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            ServiceName::Gateway => 3000,
            ServiceName::Auth => 3001,
            ServiceName::Hospital => 3002,
            ServiceName::Insurance => 3003,
            ServiceName::Billing => 3004,
        }
    }

    /// Whether the service owns a database. The gateway keeps no records of its own.
    pub fn has_database(self) -> bool {
        !matches!(self, ServiceName::Gateway)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown service `{0}`: expected one of all, gateway, auth, hospital, insurance, billing")]
pub struct UnknownService(pub String);

impl FromStr for ServiceName {
    type Err = UnknownService;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL
            .into_iter()
            .find(|name| name.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownService(s.trim().to_owned()))
    }
}

/// A set of services to run, kept in start order without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Targets(Vec<ServiceName>);

impl Targets {
    pub fn all() -> Self {
        Targets(ServiceName::ALL.to_vec())
    }

    pub fn only(names: impl IntoIterator<Item = ServiceName>) -> Self {
        let mut list: Vec<ServiceName> = names.into_iter().collect();
        list.sort();
        list.dedup();
        Targets(list)
    }

    pub fn contains(&self, name: ServiceName) -> bool {
        self.0.contains(&name)
    }

    /// In start order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = ServiceName> + '_ {
        self.0.iter().copied()
    }

    pub fn is_all(&self) -> bool {
        self.0.len() == ServiceName::ALL.len()
    }
}

impl fmt::Display for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

/// Reads `all` or a comma-separated list such as `gateway,hospital`.
impl FromStr for Targets {
    type Err = UnknownService;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut names = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.eq_ignore_ascii_case("all") {
                return Ok(Targets::all());
            }
            names.push(part.parse()?);
        }
        if names.is_empty() {
            return Err(UnknownService(String::new()));
        }
        Ok(Targets::only(names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_in_start_order_without_duplicates() {
        let t: Targets = "gateway, hospital,auth,hospital".parse().unwrap();
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![ServiceName::Auth, ServiceName::Hospital, ServiceName::Gateway]);
        assert_eq!(t.to_string(), "auth,hospital,gateway");
    }

    #[test]
    fn all_means_every_service() {
        assert!("all".parse::<Targets>().unwrap().is_all());
        assert!("hospital,ALL".parse::<Targets>().unwrap().is_all());
    }

    #[test]
    fn unknown_names_are_refused_with_the_accepted_values() {
        let err = "hospital,pharmacy".parse::<Targets>().unwrap_err();
        assert_eq!(err, UnknownService("pharmacy".into()));
        assert!(err.to_string().contains("gateway, auth, hospital"));
        assert!("".parse::<Targets>().is_err());
    }
}
