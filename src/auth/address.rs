//! The client's address, as counted. Rocket's own `ip_header` is off (it believes `X-Real-IP`
//! from anyone): forwarding headers are read only when the connection comes from a configured
//! trusted proxy (`trusted_proxies`), and then `X-Forwarded-For` right to left, skipping
//! trusted hops and stopping at an entry that does not parse; `X-Real-IP` only when no
//! `X-Forwarded-For` came. An IPv6 client counts by its /64, the block one subscriber usually holds.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use ipnet::IpNet;

/// Where a request comes from: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddress(IpAddr);

impl ClientAddress {
    /// The client as counted: IPv4 (also when mapped into IPv6) as is, IPv6 by its /64.
    pub fn counted(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientAddress(IpAddr::V4(v4)),
                None => ClientAddress(IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1)))),
            },
            v4 => ClientAddress(v4),
        }
    }
}

impl fmt::Display for ClientAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Addresses as a setting lists them (`trusted_proxies`, `metrics_from`): CIDR blocks, or
/// single addresses.
#[derive(Debug, Clone, Default)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// The entries of the setting `name`; one that is neither an address nor a block is refused.
    pub fn parse(name: &str, entries: &[String]) -> Result<Self, String> {
        let parse = |entry: &String| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{name}: {entry:?} is neither an address nor a CIDR block"))
        };
        entries.iter().map(parse).collect::<Result<_, _>>().map(Networks)
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address as the IPv4 address it is) is in one of them.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip_of(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The trusted proxies, from `trusted_proxies`.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Networks);

impl TrustedProxies {
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        Networks::parse("trusted_proxies", entries).map(TrustedProxies)
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client of a connection from `peer` that carried these forwarding headers.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str], real_ip: Option<&str>) -> ClientAddress {
        ClientAddress::counted(self.client_ip(peer, forwarded_for, real_ip))
    }

    /// The client's own address (not counted by its block), as [`TrustedProxies::client`]
    /// finds it.
    pub fn client_ip(&self, peer: IpAddr, forwarded_for: &[&str], real_ip: Option<&str>) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        // Each proxy appends the address it saw: walking right to left past the trusted hops,
        // the first untrusted one is the client. Anything to its left was written by the client
        // itself, and so is an entry that does not parse: the walk ends there, and the last hop
        // read (a trusted proxy, or the peer) is the client. `X-Real-IP` is a single value a
        // proxy sets only when it writes no list: it counts when no `X-Forwarded-For` came.
        if forwarded_for.is_empty() {
            let real_ip = real_ip.and_then(|ip| ip.trim().parse().ok());
            return real_ip.unwrap_or(peer);
        }
        let mut client = peer;
        for hop in forwarded_for.iter().rev().flat_map(|header| header.rsplit(',')) {
            let Ok(hop) = hop.trim().parse::<IpAddr>() else { break };
            client = hop;
            if !self.trusts(hop) {
                break;
            }
        }
        client
    }
}

/// An IPv4-mapped IPv6 address as the IPv4 address it is.
fn ip_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(entries: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&entries.iter().map(|e| e.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_sends() {
        let trusted = proxies(&[]);
        let client = trusted.client(ip("198.51.100.9"), &["1.2.3.4"], Some("5.6.7.8"));
        assert_eq!(client.to_string(), "198.51.100.9");
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let trusted = proxies(&["127.0.0.1/32", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        // The client wrote the first hop itself: it is not believed.
        let client = trusted.client(peer, &["6.6.6.6, 203.0.113.7, 10.1.2.3"], None);
        assert_eq!(client.to_string(), "203.0.113.7");
        // Two headers count as one list.
        assert_eq!(trusted.client(peer, &["6.6.6.6", "203.0.113.7"], None).to_string(), "203.0.113.7");
        // Only trusted hops: the leftmost.
        assert_eq!(trusted.client(peer, &["10.0.0.1, 10.0.0.2"], None).to_string(), "10.0.0.1");
        // No X-Forwarded-For: X-Real-IP, from a trusted proxy only.
        assert_eq!(trusted.client(peer, &[], Some("192.0.2.1")).to_string(), "192.0.2.1");
    }

    #[test]
    fn an_entry_that_does_not_parse_ends_the_walk_and_x_real_ip_is_then_ignored() {
        let trusted = proxies(&["127.0.0.1/32", "10.0.0.0/8"]);
        let peer = ip("127.0.0.1");
        // The client's own garbage, left of what the proxy appended: the proxy's hop counts.
        assert_eq!(trusted.client(peer, &["x, 203.0.113.7"], Some("1.1.1.1")).to_string(), "203.0.113.7");
        // Garbage at the right end: the peer itself is the last hop read.
        for garbled in [&["x"][..], &["203.0.113.7, not-an-ip"], &[""], &["203.0.113.7", "x"]] {
            let forged = Some("198.51.100.77");
            assert_eq!(trusted.client(peer, garbled, forged).to_string(), "127.0.0.1", "{garbled:?}");
        }
        // Behind trusted hops, the walk stops at the garbage: the last trusted hop read.
        assert_eq!(trusted.client(peer, &["6.6.6.6, junk, 10.0.0.9"], None).to_string(), "10.0.0.9");
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let trusted = proxies(&[]);
        let client = trusted.client(ip("2001:db8:1:2:3:4:5:6"), &[], None);
        assert_eq!(client.to_string(), "2001:db8:1:2::/64");
        assert_eq!(client, trusted.client(ip("2001:db8:1:2:ffff::1"), &[], None));
        assert_eq!(trusted.client(ip("::ffff:192.0.2.1"), &[], None).to_string(), "192.0.2.1");
    }

    #[test]
    fn trusted_proxies_are_cidr_blocks_or_addresses() {
        assert!(TrustedProxies::parse(&["127.0.0.1".into(), "::1".into(), "10.0.0.0/8".into()]).is_ok());
        assert!(TrustedProxies::parse(&["10.0.0.0/33".into()]).is_err());
        assert!(TrustedProxies::parse(&["localhost".into()]).is_err());
    }
}
