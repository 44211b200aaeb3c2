//! Who the client is: the address a request came from, seen through the proxies MedCov trusts.
//!
//! The gateway appends the address it was called from to `X-Forwarded-For` when it forwards a
//! request. A service believes that header only when the request reached it from a trusted
//! proxy (`http.trusted_proxies`, loopback by default) or from inside the process (the gateway
//! calling a service in the same process has no socket); otherwise the socket's peer is the
//! client, and a forged header changes nothing.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{HeaderMap, Request};

pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// A network (an address and a prefix length): `10.0.0.0/8`, `::1/128`, or a bare address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(text: &str) -> Result<Network, String> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address: IpAddr = address.parse().map_err(|_| format!("`{text}` is not an IP address or network"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix must be 0 to {max}"))?,
            None => max,
        };
        Ok(Network { address, prefix })
    }
}

impl Network {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(_), IpAddr::V4(ip)) => self.contains(IpAddr::V6(ip.to_ipv6_mapped())),
            (IpAddr::V4(_), IpAddr::V6(ip)) => ip.to_ipv4_mapped().is_some_and(|ip| self.contains(IpAddr::V4(ip))),
        }
    }
}

/// The client's address: walking `X-Forwarded-For` from the nearest hop back while each hop
/// is a trusted proxy (the socket peer first; none means a call from inside the process,
/// which is trusted), the first untrusted address is the client.
pub fn client_address(headers: &HeaderMap, peer: Option<IpAddr>, trusted: &[Network]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if let Some(peer) = peer
        && !is_trusted(peer)
    {
        return Some(peer);
    }
    let hops: Vec<IpAddr> = headers
        .get_all(FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = Some(hop);
        if !is_trusted(hop) {
            break;
        }
    }
    client
}

/// The socket peer of a request, when it came over a socket.
pub fn peer<B>(request: &Request<B>) -> Option<IpAddr> {
    request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip())
}

/// `http.trusted_proxies`, parsed (the configuration was validated at start-up).
pub fn trusted(config: &medcov_config::HttpConfig) -> Vec<Network> {
    config.trusted_proxies.iter().filter_map(|n| n.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(FORWARDED_FOR, xff.parse().unwrap());
        headers
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop() {
        let trusted: Vec<Network> = ["127.0.0.1", "10.0.0.0/8"].iter().map(|n| n.parse().unwrap()).collect();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        // Straight from a client: the header is the client's to forge, and ignored.
        assert_eq!(client_address(&headers("1.2.3.4"), Some(ip("203.0.113.9")), &trusted), Some(ip("203.0.113.9")));
        // Through the gateway (trusted): the address it saw.
        assert_eq!(client_address(&headers("203.0.113.9"), Some(ip("127.0.0.1")), &trusted), Some(ip("203.0.113.9")));
        // A forged first hop before a real one: the nearest untrusted hop wins.
        assert_eq!(
            client_address(&headers("6.6.6.6, 203.0.113.9, 10.1.2.3"), Some(ip("10.0.0.5")), &trusted),
            Some(ip("203.0.113.9"))
        );
        // In process, no header: unknown.
        assert_eq!(client_address(&HeaderMap::new(), None, &trusted), None);
        assert_eq!(client_address(&headers("198.51.100.7"), None, &trusted), Some(ip("198.51.100.7")));
    }

    #[test]
    fn networks_parse_and_match() {
        let net: Network = "192.168.0.0/16".parse().unwrap();
        assert!(net.contains("192.168.4.5".parse().unwrap()));
        assert!(!net.contains("192.169.0.1".parse().unwrap()));
        let v6: Network = "::1".parse().unwrap();
        assert!(v6.contains("::1".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Network>().is_err());
        assert!("nonsense".parse::<Network>().is_err());
        let any: Network = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
    }
}
