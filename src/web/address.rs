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
    let peer = peer(req);
    match req.rocket().state::<TrustedProxies>() {
        Some(trusted) => {
            let forwarded_for: Vec<&str> = req.headers().get("X-Forwarded-For").collect();
            trusted.client(peer, &forwarded_for, req.headers().get_one("X-Real-IP"))
        }
        None => ClientAddress::counted(peer),
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientAddress {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(client_address(req))
    }
}
