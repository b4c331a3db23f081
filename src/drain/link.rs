//! Where a drain sends its lines, and the connection it keeps there:
//! HTTP(S) posts in Logplex's framing, or a syslog stream over TCP (or
//! TLS).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::{DrainError, frame};
use crate::logbus::LogLine;

/// How long one delivery (connect, send, answer) may take before the
/// connection is dropped and the batch retried.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// A drain URL, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// An HTTP(S) endpoint: its path and query, and Basic credentials
    /// from the URL's user info.
    Http {
        path: String,
        authorization: Option<String>,
    },
    /// RFC 5424 over a TCP stream, octet-counted.
    Syslog,
}

impl Target {
    /// Reads `https://…`, `http://…`, `syslog+tls://host:port` or
    /// `syslog://host:port`.
    pub fn parse(url: &str) -> Result<Target, DrainError> {
        let bad = |why: &str| DrainError::BadUrl {
            url: url.to_owned(),
            why: why.to_owned(),
        };
        let u = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        let (tls, http) = match u.scheme() {
            "https" => (true, true),
            "http" => (false, true),
            "syslog+tls" => (true, false),
            "syslog" => (false, false),
            other => {
                return Err(bad(&format!(
                    "the scheme {other}:// is not a drain's: use https://, http://, syslog+tls:// or syslog://"
                )));
            }
        };
        let host = match u.host() {
            Some(url::Host::Ipv6(a)) => a.to_string(),
            Some(h) => h.to_string(),
            None => return Err(bad("it names no host")),
        };
        let port = match (u.port(), http) {
            (Some(p), _) => p,
            (None, true) => u
                .port_or_known_default()
                .unwrap_or(if tls { 443 } else { 80 }),
            (None, false) => {
                return Err(bad(
                    "a syslog drain needs a port, as in syslog+tls://logs.example.com:6514",
                ));
            }
        };
        let kind = if http {
            let authorization = (!u.username().is_empty()).then(|| {
                let user = percent_encoding::percent_decode_str(u.username()).decode_utf8_lossy();
                let pass = percent_encoding::percent_decode_str(u.password().unwrap_or(""))
                    .decode_utf8_lossy();
                format!("Basic {}", base64(format!("{user}:{pass}").as_bytes()))
            });
            let mut path = u.path().to_owned();
            if let Some(q) = u.query() {
                path = format!("{path}?{q}");
            }
            Kind::Http {
                path,
                authorization,
            }
        } else {
            Kind::Syslog
        };
        Ok(Target {
            kind,
            host,
            port,
            tls,
        })
    }

    /// `host:port` as a Host header says it.
    fn authority(&self) -> String {
        let default = if self.tls { 443 } else { 80 };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The TLS client every drain uses: the Mozilla roots, and the operator's
/// own CAs (`wdyno daemon --drain-ca FILE`).
pub fn tls_config(extra_ca_pem: Option<&[u8]>) -> Result<Arc<ClientConfig>, DrainError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_ca_pem {
        use rustls_pki_types::pem::PemObject;
        let mut n = 0;
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| DrainError::Ca(e.to_string()))?;
            roots.add(cert).map_err(|e| DrainError::Ca(e.to_string()))?;
            n += 1;
        }
        if n == 0 {
            return Err(DrainError::Ca("it holds no PEM certificate".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DrainError::Ca(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

/// A drain's connection, opened on first use and again after a failure.
pub struct Link {
    target: Target,
    token: String,
    tls: Arc<ClientConfig>,
    http: Option<SendRequest<Full<Bytes>>>,
    stream: Option<Box<dyn Io>>,
    /// Numbers the HTTP posts (`Logplex-Frame-Id`).
    posts: u64,
    id: String,
}

impl Link {
    pub fn new(target: Target, token: String, id: String, tls: Arc<ClientConfig>) -> Self {
        Link {
            target,
            token,
            tls,
            http: None,
            stream: None,
            posts: 0,
            id,
        }
    }

    /// Sends `lines`; on any error the connection is dropped (the next
    /// call opens a new one) and the caller retries the same lines.
    pub async fn send(&mut self, lines: &[Arc<LogLine>]) -> Result<(), String> {
        let r = tokio::time::timeout(DELIVERY_TIMEOUT, self.try_send(lines))
            .await
            .unwrap_or_else(|_| Err(format!("no answer in {} s", DELIVERY_TIMEOUT.as_secs())));
        if r.is_err() {
            self.http = None;
            self.stream = None;
        }
        r
    }

    async fn try_send(&mut self, lines: &[Arc<LogLine>]) -> Result<(), String> {
        let mut body = Vec::with_capacity(lines.len() * 128);
        for l in lines {
            frame::frame(l, &self.token, &mut body);
        }
        match self.target.kind.clone() {
            Kind::Syslog => {
                if self.stream.is_none() {
                    self.stream = Some(self.connect().await?);
                }
                let s = self.stream.as_mut().expect("connected above");
                s.write_all(&body).await.map_err(|e| e.to_string())?;
                s.flush().await.map_err(|e| e.to_string())
            }
            Kind::Http {
                path,
                authorization,
            } => {
                if self.http.as_ref().is_none_or(|h| h.is_closed()) {
                    let io = self.connect().await?;
                    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                        .await
                        .map_err(|e| e.to_string())?;
                    tokio::spawn(conn);
                    self.http = Some(sender);
                }
                self.posts += 1;
                let mut req = Request::post(path)
                    .header(header::HOST, self.target.authority())
                    .header(header::CONTENT_TYPE, "application/logplex-1")
                    .header(header::USER_AGENT, "wdyno-logplex")
                    .header("Logplex-Msg-Count", lines.len())
                    .header("Logplex-Frame-Id", format!("{}-{}", self.id, self.posts))
                    .header("Logplex-Drain-Token", &self.token);
                if let Some(a) = authorization {
                    req = req.header(header::AUTHORIZATION, a);
                }
                let req = req
                    .body(Full::new(Bytes::from(body)))
                    .map_err(|e| e.to_string())?;
                let sender = self.http.as_mut().expect("connected above");
                sender.ready().await.map_err(|e| e.to_string())?;
                let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                // Read to the end, so the connection can carry the next post.
                let _ = resp.into_body().collect().await;
                if status.is_success() {
                    Ok(())
                } else {
                    Err(format!("the drain answered {status}"))
                }
            }
        }
    }

    async fn connect(&self) -> Result<Box<dyn Io>, String> {
        let t = &self.target;
        let tcp = connect_tcp(&t.host, t.port)
            .await
            .map_err(|e| format!("connecting to {}:{}: {e}", t.host, t.port))?;
        let _ = tcp.set_nodelay(true);
        if !t.tls {
            return Ok(Box::new(tcp));
        }
        let name = rustls_pki_types::ServerName::try_from(t.host.clone())
            .map_err(|e| format!("{}: {e}", t.host))?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {}: {e}", t.host))?;
        Ok(Box::new(tls))
    }
}

/// The kernel's share of a drain's buffer: a fixed send buffer, so a drain
/// that stops reading fills the drain's own buffer (and says `L10`)
/// instead of megabytes of socket memory.
const SOCKET_SEND_BUFFER: u32 = 64 << 10;

async fn connect_tcp(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let mut last = None;
    for addr in tokio::net::lookup_host((host, port)).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        socket.set_send_buffer_size(SOCKET_SEND_BUFFER)?;
        match socket.connect(addr).await {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("the name has no address")))
}

/// Standard base64 with padding (Basic credentials).
fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_of_every_kind() {
        let t = Target::parse("https://user:p%40ss@logs.example.com/in?x=1").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.tls),
            ("logs.example.com", 443, true)
        );
        assert_eq!(
            t.kind,
            Kind::Http {
                path: "/in?x=1".into(),
                authorization: Some(format!("Basic {}", base64(b"user:p@ss"))),
            }
        );
        let t = Target::parse("syslog://127.0.0.1:5140").unwrap();
        assert_eq!((t.kind, t.port, t.tls), (Kind::Syslog, 5140, false));
        assert!(
            Target::parse("syslog+tls://logs.example.com:6514")
                .unwrap()
                .tls
        );
    }

    #[test]
    fn bad_urls_say_what_to_do() {
        let e = Target::parse("syslog://logs.example.com")
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a port"), "{e}");
        let e = Target::parse("ftp://x").unwrap_err().to_string();
        assert!(e.contains("use https://"), "{e}");
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b"user:pass"), "dXNlcjpwYXNz");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"a"), "YQ==");
    }
}
