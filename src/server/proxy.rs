//! The PROXY protocol (version 2) header a TCP balancer sends before its client's bytes
//! (`--proxy-protocol`; HAProxy's `send-proxy-v2`).
//!
//! Owns reading and checking that header: exactly its bytes, no more (the client's first frame
//! follows it, and must be left for the connection's wire), within a time bound. It says who the
//! client really is, or that the connection is the balancer's own (a `LOCAL` header: a health
//! check), or why the header is not acceptable. Parsing is the `ppp` crate's.
//!
//! It also says who may send one ([`Network`]: the balancers' addresses); the accept loop refuses
//! any other peer before reading a byte.
//!
//! It must not admit or refuse connections (the accept loop does, with the address found here)
//! and must not read past the header.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures::AsyncReadExt;

use crate::rt::{self, Socket};

/// The header's fixed part: the 12-byte signature, version and command, family and protocol,
/// and the length of what follows.
const FIXED: usize = 16;

/// An address, or a network in CIDR form (`10.0.0.0/8`, `fd00::/8`), allowed to send the
/// header: a balancer. Any other peer could claim any address with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in the network (an IPv4 address seen as IPv4-mapped IPv6 too).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Network {
    type Err = String;
    fn from_str(s: &str) -> Result<Network, String> {
        let bad = || format!("{s:?} is not an address or a network (10.0.0.0/8, fd00::/8)");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| bad())?;
        let most = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= most)
                .ok_or_else(bad)?,
            None => most,
        };
        Ok(Network { addr, prefix })
    }
}

impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// What the header said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A client's connection, relayed: the client's own address.
    Client(SocketAddr),
    /// The balancer's own connection (`LOCAL`): a health check, not a player.
    Balancer,
}

/// Reads the PROXY v2 header from `socket`, within `limit`.
pub(crate) async fn read_header(socket: &Socket, limit: Duration) -> Result<Origin, String> {
    match rt::timeout(limit, read(socket)).await {
        Some(read) => read,
        None => Err(format!("no PROXY header within {} s", limit.as_secs_f64())),
    }
}

async fn read(socket: &Socket) -> Result<Origin, String> {
    let mut input = socket;
    let mut header = vec![0u8; FIXED];
    input
        .read_exact(&mut header)
        .await
        .map_err(|e| format!("no PROXY header: {e}"))?;
    if header[..12] != *ppp::v2::PROTOCOL_PREFIX {
        return Err("no PROXY v2 header: the connection did not start with its signature".into());
    }
    let rest = usize::from(u16::from_be_bytes([header[14], header[15]]));
    header.resize(FIXED + rest, 0);
    input
        .read_exact(&mut header[FIXED..])
        .await
        .map_err(|e| format!("a PROXY header cut short: {e}"))?;
    origin(&header)
}

/// What a whole header says.
pub(crate) fn origin(header: &[u8]) -> Result<Origin, String> {
    use ppp::v2::{Addresses, Command, Header};
    let parsed = Header::try_from(header).map_err(|e| format!("a bad PROXY header: {e}"))?;
    match (parsed.command, parsed.addresses) {
        (Command::Local, _) => Ok(Origin::Balancer),
        (Command::Proxy, Addresses::IPv4(a)) => Ok(Origin::Client(SocketAddr::from((
            a.source_address,
            a.source_port,
        )))),
        (Command::Proxy, Addresses::IPv6(a)) => Ok(Origin::Client(SocketAddr::from((
            a.source_address,
            a.source_port,
        )))),
        (Command::Proxy, other) => Err(format!(
            "a PROXY header without a TCP client address ({:?})",
            other.address_family()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Command, IPv4, Protocol, Version};

    fn header(command: Command, source: [u8; 4], port: u16) -> Vec<u8> {
        let addresses = IPv4::new(source, [127, 0, 0, 1], port, 12000);
        Builder::with_addresses(Version::Two | command, Protocol::Stream, addresses)
            .build()
            .unwrap()
    }

    #[test]
    fn a_relayed_connection_names_its_client_and_a_local_one_is_the_balancer() {
        assert_eq!(
            origin(&header(Command::Proxy, [127, 0, 0, 2], 5555)),
            Ok(Origin::Client("127.0.0.2:5555".parse().unwrap()))
        );
        assert_eq!(
            origin(&header(Command::Local, [0, 0, 0, 0], 0)),
            Ok(Origin::Balancer)
        );
        assert!(origin(b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x04abcd").is_err());
    }
}

#[cfg(test)]
mod network_tests {
    use super::Network;

    #[test]
    fn networks_hold_their_addresses_and_no_others() {
        let net: Network = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()));
        assert!(
            net.contains("::ffff:10.1.0.9".parse().unwrap()),
            "IPv4-mapped"
        );
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        let one: Network = "127.0.0.1".parse().unwrap();
        assert!(one.contains("127.0.0.1".parse().unwrap()));
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        let v6: Network = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        assert!(!v6.contains("fe80::1".parse().unwrap()));
        let all: Network = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains("192.0.2.7".parse().unwrap()));
        for bad in ["", "10.0.0.0/33", "::1/129", "host.example", "10.0.0.0/x"] {
            assert!(bad.parse::<Network>().is_err(), "{bad:?}");
        }
    }
}
