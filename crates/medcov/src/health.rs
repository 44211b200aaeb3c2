//! `medcov health`: asks each chosen service of this machine whether it is alive (or ready) and
//! fails unless every one answers 200. Container images have no curl; this is their
//! `HEALTHCHECK`, and it reads `MEDCOV_TARGET` as `serve` does, so one image checks any role.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{Context, bail};
use medcov_config::{Config, Targets};

/// Where to reach a service listening on `host`: itself, or loopback for a wildcard address.
fn local(host: IpAddr) -> IpAddr {
    match host {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

pub async fn check(config: &Config, targets: &Targets, ready: bool) -> anyhow::Result<()> {
    let path = if ready { "/health/ready" } else { "/health/live" };
    let client =
        reqwest::Client::builder().timeout(Duration::from_secs(3)).build().context("cannot build the HTTP client")?;
    let host = local(config.http.host);
    let mut failed = Vec::new();
    for name in targets.iter() {
        let port = config.port(name);
        if port == 0 {
            bail!("services.{name}.port is 0 (any free port): there is no known port to ask");
        }
        let url = format!("http://{}{path}", std::net::SocketAddr::new(host, port));
        match client.get(&url).send().await {
            Ok(response) if response.status().is_success() => println!("{name}: {}", response.status()),
            Ok(response) => failed.push(format!("{name} answered {} at {url}", response.status())),
            Err(error) => failed.push(format!("{name} did not answer at {url}: {error}")),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    Ok(())
}
