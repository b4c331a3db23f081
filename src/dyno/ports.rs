//! Which TCP ports belong to whom on this host.
//!
//! Every dyno gets its own `$PORT`; the platform reserves its own ports (the
//! control API, the router). A dyno may bind only its own port and may not
//! connect to a reserved port or to another dyno's port — whatever address
//! it names, since all of them are this host. Host-only addresses (loopback,
//! link-local) are fenced off entirely, except for the ports the operator
//! opens to dynos (`--allow-host-port`, a local database say).

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::{Arc, Mutex};

/// The platform's book of ports. Cheap to clone.
#[derive(Clone, Default)]
pub struct PortBook {
    inner: Arc<Mutex<Book>>,
}

#[derive(Default)]
struct Book {
    reserved: HashSet<u16>,
    dynos: HashSet<u16>,
    /// Host-only ports the operator opened to every dyno.
    host: HashSet<u16>,
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
    pub fn lease(&self) -> std::io::Result<PortLease> {
        // Ask the kernel for a free port; retry if it hands out one we have
        // leased but the dyno has not bound yet.
        for _ in 0..64 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
                .local_addr()?
                .port();
            let mut book = self.lock();
            if !book.reserved.contains(&port) && book.dynos.insert(port) {
                return Ok(PortLease {
                    port,
                    book: self.clone(),
                });
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no free port for a dyno after 64 tries",
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

#[cfg(test)]
mod tests {
    use super::*;

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
