//! Outgoing HTTP from `wasi:http/outgoing-handler`, under the same policy
//! as raw sockets ([`socket_allowed`]): wasmtime's default sender opens its
//! own TCP connection and never asks `socket_addr_check`, so without this a
//! proxy dyno could reach the control API or a loopback service over HTTP.
//!
//! A host name is resolved here and every address it names is checked
//! (`localhost` names loopback: refused). A plain-HTTP request is then sent
//! to the checked address itself, so a name that resolves differently the
//! second time (DNS rebinding) cannot slip through; an HTTPS request keeps
//! its name, which TLS needs, and a rebound name would fail certificate
//! verification before a request byte is sent.

use std::net::{IpAddr, SocketAddr};

use http::uri::{Authority, Scheme};
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::ports::PortBook;
use super::sandbox::socket_allowed;

pub struct EgressHooks {
    ports: PortBook,
    own: Option<u16>,
    egress: bool,
}

impl EgressHooks {
    pub fn new(ports: PortBook, own: Option<u16>, egress: bool) -> Self {
        EgressHooks { ports, own, egress }
    }
}

/// Where a request may go: the address to connect to instead of its name
/// (plain HTTP), or its own authority (HTTPS), or refused.
async fn destination(
    ports: PortBook,
    own: Option<u16>,
    egress: bool,
    uri: &http::Uri,
) -> Result<Option<SocketAddr>, Error> {
    let https = uri.scheme() == Some(&Scheme::HTTPS);
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let host = uri.host().ok_or(Error::HttpRequestUriInvalid)?;
    let allowed = |a: SocketAddr| socket_allowed(&ports, own, egress, a, SocketAddrUse::TcpConnect);
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        let addr = SocketAddr::new(ip, port);
        return if allowed(addr) {
            Ok(None)
        } else {
            Err(Error::HttpRequestDenied)
        };
    }
    // Names are looked up only with egress, as for sockets.
    if !egress {
        return Err(Error::HttpRequestDenied);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| Error::DnsError {
            rcode: None,
            info_code: None,
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::DestinationNotFound);
    }
    if !addrs.iter().all(|&a| allowed(a)) {
        return Err(Error::HttpRequestDenied);
    }
    Ok(if https { None } else { Some(addrs[0]) })
}

/// `uri` with its authority replaced by `addr` (the `Host` header, set from
/// the original authority, is untouched).
fn pinned(uri: &http::Uri, addr: SocketAddr) -> Result<http::Uri, Error> {
    let mut parts = uri.clone().into_parts();
    parts.authority = Some(
        Authority::try_from(addr.to_string().as_str()).map_err(|_| Error::HttpRequestUriInvalid)?,
    );
    http::Uri::from_parts(parts).map_err(|_| Error::HttpRequestUriInvalid)
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for EgressHooks {
    fn send_request(
        &mut self,
        mut request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        drop(fut);
        let (ports, own, egress) = (self.ports.clone(), self.own, self.egress);
        Box::new(async move {
            use http_body_util::BodyExt;
            if let Some(addr) = destination(ports, own, egress, request.uri()).await? {
                *request.uri_mut() = pinned(request.uri(), addr)?;
            }
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn dest(book: &PortBook, uri: &str) -> Result<Option<SocketAddr>, Error> {
        destination(book.clone(), Some(40_000), true, &uri.parse().unwrap()).await
    }

    #[tokio::test]
    async fn http_to_host_only_addresses_is_refused_but_opened_ports() {
        let book = PortBook::new();
        book.reserve(7000);
        for uri in [
            "http://127.0.0.1:8000/",
            "http://localhost:8000/",
            "http://[::1]:8000/",
            "http://[::ffff:127.0.0.1]:8000/",
            "http://169.254.169.254/latest/meta-data",
            "https://localhost/",
            "http://192.0.2.9:7000/",
        ] {
            assert!(
                matches!(dest(&book, uri).await, Err(Error::HttpRequestDenied)),
                "{uri}"
            );
        }
        assert!(matches!(dest(&book, "http://192.0.2.9/").await, Ok(None)));
        book.allow_host_port(8000);
        assert!(matches!(
            dest(&book, "http://127.0.0.1:8000/").await,
            Ok(None)
        ));
        // A name is pinned to the address that was checked.
        let pinned_to = dest(&book, "http://localhost:8000/")
            .await
            .unwrap()
            .unwrap();
        assert!(pinned_to.ip().is_loopback() && pinned_to.port() == 8000);
        let uri = pinned(&"http://localhost:8000/x?y".parse().unwrap(), pinned_to).unwrap();
        assert_eq!(uri.path_and_query().unwrap(), "/x?y");
        assert_eq!(uri.port_u16(), Some(8000));
    }
}
