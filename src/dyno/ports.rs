//! Which TCP ports belong to whom on this host.
//!
//! Every dyno gets its own `$PORT`; the platform reserves its own ports (the
//! control API, the router). A dyno may bind only its own port and may not
//! connect to a reserved port or to another dyno's port — whatever address
//! it names, since all of them are this host. Host-only addresses (loopback,
//! link-local) are fenced off entirely, except for the ports the operator
//! opens to dynos (`--allow-host-port`, a local database say). In a
//! cluster, the addresses of its NATS servers and of every host are fenced
//! the same way: a dyno reaches none of their ports (NATS client and route
//! ports, routers, peer ports, APIs), whatever it knows of them.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};

/// The platform's book of ports. Cheap to clone.
#[derive(Clone, Default)]
pub struct PortBook {
    inner: Arc<Mutex<Book>>,
}

#[derive(Default)]
struct Book {
    /// Where the next lease looks first.
    cursor: u32,
    reserved: HashSet<u16>,
    dynos: HashSet<u16>,
    /// Host-only ports the operator opened to every dyno.
    host: HashSet<u16>,
    /// Addresses fenced as host-only ones are: a cluster's machines.
    fenced: HashSet<IpAddr>,
}

/// A dyno's `$PORT`, given back to the book when dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    book: PortBook,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        self.book.lock().dynos.remove(&self.port);
    }
}

impl std::fmt::Debug for PortBook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortBook")
    }
}

impl PortBook {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.inner.lock().expect("port book lock poisoned")
    }

    /// Marks a platform port (API, router) as off limits to every dyno.
    pub fn reserve(&self, port: u16) {
        self.lock().reserved.insert(port);
    }

    /// Fences `ip` off as a host-only address: a cluster's server or host.
    pub fn fence(&self, ip: IpAddr) {
        self.lock().fenced.insert(ip.to_canonical());
    }

    /// Whether `ip` was fenced off ([`PortBook::fence`]).
    pub fn is_fenced(&self, ip: IpAddr) -> bool {
        let book = self.lock();
        !book.fenced.is_empty() && book.fenced.contains(&ip.to_canonical())
    }

    /// Opens a host-only port (one on loopback, say) to every dyno.
    pub fn allow_host_port(&self, port: u16) {
        self.lock().host.insert(port);
    }

    /// Whether the operator opened this host-only port to dynos.
    pub fn host_port_allowed(&self, port: u16) -> bool {
        self.lock().host.contains(&port)
    }

    /// Whether any host-only port is open to dynos: then a dyno needs
    /// outgoing sockets even with egress off.
    pub fn any_host_port_allowed(&self) -> bool {
        !self.lock().host.is_empty()
    }

    /// Finds a free port for a dyno and records it as that dyno's.
    ///
    /// Ports are taken in turn from the kernel's ephemeral range, skipping
    /// those leased and those something else has bound. (Asking the kernel
    /// for port 0 hands out the same few ports again and again while their
    /// dynos have not bound them yet: a 10 000-dyno scale ran out of tries.)
    pub fn lease(&self) -> std::io::Result<PortLease> {
        let (lo, hi) = ephemeral_range();
        let span = u32::from(hi - lo) + 1;
        let mut book = self.lock();
        if book.cursor == 0 {
            // Each platform starts at its own place, so two on one host
            // rarely offer the same port to two unbound dynos.
            book.cursor = rand::random::<u32>() | 1;
        }
        for _ in 0..span {
            let port = lo + ((book.cursor % span) as u16);
            book.cursor = book.cursor.wrapping_add(1);
            if book.reserved.contains(&port) || book.dynos.contains(&port) {
                continue;
            }
            if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_err() {
                continue;
            }
            book.dynos.insert(port);
            return Ok(PortLease {
                port,
                book: self.clone(),
            });
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            format!("every port of {lo}-{hi} is taken: no port for another web dyno"),
        ))
    }

    /// Whether a dyno whose own port is `own` may connect to `port`.
    pub fn may_connect(&self, own: Option<u16>, port: u16) -> bool {
        if Some(port) == own {
            return true;
        }
        let book = self.lock();
        !book.reserved.contains(&port) && !book.dynos.contains(&port)
    }
}

/// The kernel's ephemeral port range (`net.ipv4.ip_local_port_range`).
fn ephemeral_range() -> (u16, u16) {
    static RANGE: std::sync::OnceLock<(u16, u16)> = std::sync::OnceLock::new();
    *RANGE.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|s| {
                let mut it = s.split_whitespace().map(|n| n.parse::<u16>().ok());
                Some((it.next()??, it.next()??))
            })
            .filter(|(lo, hi)| lo <= hi && *lo > 1024)
            .unwrap_or((32768, 60999))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_of_unbound_leases_are_all_distinct() {
        let book = PortBook::new();
        let leases: Vec<PortLease> = (0..5000).map(|_| book.lease().unwrap()).collect();
        let ports: HashSet<u16> = leases.iter().map(|l| l.port()).collect();
        assert_eq!(ports.len(), 5000);
    }

    #[test]
    fn leases_are_distinct_and_forbidden_to_others() {
        let book = PortBook::new();
        book.reserve(5000);
        let a = book.lease().unwrap();
        let b = book.lease().unwrap();
        assert_ne!(a.port(), b.port());
        assert!(!book.may_connect(Some(a.port()), b.port()));
        assert!(book.may_connect(Some(a.port()), a.port()));
        assert!(!book.may_connect(None, 5000));
        assert!(book.may_connect(None, 443));
        let bp = b.port();
        drop(b);
        assert!(book.may_connect(Some(a.port()), bp));
        assert!(!book.any_host_port_allowed());
        book.allow_host_port(5432);
        assert!(book.host_port_allowed(5432));
        assert!(!book.host_port_allowed(5433));
        assert!(book.any_host_port_allowed());
    }
}
