//! The client's address of a request: its peer, or what a trusted proxy says the peer
//! forwarded (`auth::TrustedProxies` has the rule).

use std::net::{IpAddr, Ipv4Addr};

use rocket::request::{FromRequest, Outcome, Request};

use crate::auth::{ClientAddress, TrustedProxies};

/// The address a request's connection comes from. A request from Rocket's local client in
/// tests has none: it is this machine.
pub fn peer(req: &Request<'_>) -> IpAddr {
    req.remote().map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |socket| socket.ip())
}

/// The client of a request, as counted.
pub fn client_address(req: &Request<'_>) -> ClientAddress {
    ClientAddress::counted(client_ip(req))
}

/// The client's own address: the peer, or, from a trusted proxy, the client it forwarded.
pub fn client_ip(req: &Request<'_>) -> IpAddr {
    let peer = peer(req);
    match req.rocket().state::<TrustedProxies>() {
        Some(trusted) => {
            let forwarded_for: Vec<&str> = req.headers().get("X-Forwarded-For").collect();
            trusted.client_ip(peer, &forwarded_for, req.headers().get_one("X-Real-IP"))
        }
        None => peer,
    }
}

/// Whether the request came straight from its client: from no proxy, or from a trusted one
/// that said who the client is. A request from an untrusted peer that carries forwarding
/// headers came through a proxy MiniAuth was not told of: its peer is not its client.
pub fn direct_or_trusted(req: &Request<'_>) -> bool {
    let trusted = req.rocket().state::<TrustedProxies>().is_some_and(|proxies| proxies.trusts(peer(req)));
    let forwarded =
        ["X-Forwarded-For", "X-Real-IP", "Forwarded"].iter().any(|name| req.headers().contains(*name));
    trusted || !forwarded
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientAddress {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(client_address(req))
    }
}
