//! Which addresses are this host's own, and where a dyno's binds land.
//!
//! A dyno reaches the host only through what the platform hands it: its
//! own `$PORT` and the ports the operator opened. Everything else that
//! names this host or its link — loopback, "this host", link-local (where
//! cloud metadata services answer) — is fenced off by
//! [`super::sandbox::socket_allowed`] using [`host_only`]; and a dyno's
//! listening socket is moved to loopback by [`bind_address`], so the router
//! is its only way in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether `ip` names this host or its link rather than the network:
/// loopback, "this host" (`0.0.0.0/8`, `::`, which Linux connects to
/// loopback), link-local (`169.254.0.0/16`, `fe80::/10`, where cloud
/// metadata services live); IPv4-mapped and -compatible IPv6 forms too.
pub fn host_only(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.octets()[0] == 0 || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if v6.is_loopback() || v6.is_unspecified() || v6.is_unicast_link_local() {
                return true;
            }
            let s = v6.segments();
            let embedded = match s {
                [0, 0, 0, 0, 0, 0xffff, ..] | [0, 0, 0, 0, 0, 0, ..] => Some(Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                )),
                _ => None,
            };
            embedded.is_some_and(|v4| host_only(IpAddr::V4(v4)))
        }
    }
}

/// Where a guest's bind of `addr` really goes: any bind of a port (in
/// practice `$PORT`, the only one [`socket_allowed`] lets through) lands on
/// the loopback address of its family, so a dyno listening on `0.0.0.0` or
/// `[::]` is reachable through the router only, never from the network.
/// Port 0 is left alone: that is a socket about to connect out, which must
/// keep its wildcard source address.
pub fn bind_address(addr: SocketAddr) -> SocketAddr {
    match addr {
        _ if addr.port() == 0 => addr,
        SocketAddr::V4(a) => SocketAddr::from((Ipv4Addr::LOCALHOST, a.port())),
        SocketAddr::V6(a) => SocketAddr::from((Ipv6Addr::LOCALHOST, a.port())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dyno::ports::PortBook;
    use crate::dyno::sandbox::socket_allowed;
    use wasmtime_wasi::sockets::SocketAddrUse;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_only_covers_loopback_this_host_and_link_local_in_every_form() {
        for ip in [
            "127.0.0.1",
            "127.9.9.9",
            "0.0.0.0",
            "0.1.2.3",
            "169.254.169.254",
            "::1",
            "::",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.0.1",
            "::127.0.0.1",
        ] {
            assert!(host_only(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "192.0.2.2",
            "10.0.0.1",
            "fd00::2",
            "2001:db8::1",
            "::ffff:192.0.2.2",
        ] {
            assert!(!host_only(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn binds_land_on_loopback_only() {
        let own = Some(40_000);
        let book = PortBook::new();
        use SocketAddrUse::*;
        for (asked, got) in [
            ("0.0.0.0:40000", "127.0.0.1:40000"),
            ("192.0.2.2:40000", "127.0.0.1:40000"),
            ("127.0.0.1:40000", "127.0.0.1:40000"),
            ("[::]:40000", "[::1]:40000"),
            ("[fd00::2]:40000", "[::1]:40000"),
            ("0.0.0.0:0", "0.0.0.0:0"),
            ("[::]:0", "[::]:0"),
        ] {
            assert_eq!(bind_address(addr(asked)), addr(got), "{asked}");
        }
        // Should the rewrite ever be bypassed, the policy refuses a
        // non-loopback bind of $PORT.
        assert!(!socket_allowed(
            &book,
            own,
            true,
            addr("0.0.0.0:40000"),
            TcpBind
        ));
        assert!(!socket_allowed(
            &book,
            own,
            true,
            addr("[::]:40000"),
            TcpListen
        ));
        assert!(socket_allowed(
            &book,
            own,
            true,
            addr("[::1]:40000"),
            TcpListen
        ));
    }
}
