//! WebSocket (and any other `Upgrade`) tunnels: once the dyno answers the
//! handshake with 101, the router stops speaking HTTP on both connections
//! and copies bytes between them until either side closes, the tunnel
//! sits idle for [`TUNNEL_IDLE`], or the router shuts down.

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::wire::Upgraded;
use super::{Router, hop};

/// A tunnel with no byte either way for this long is closed (Heroku's
/// router closes idle WebSockets after 55 s, as it does idle streams: H15).
pub const TUNNEL_IDLE: Duration = Duration::from_secs(55);

/// The dyno's end of a tunnel.
pub(super) enum DynoSide {
    /// A connection of hyper's client (a real port, another host).
    Hyper(OnUpgrade),
    /// An in-memory connection.
    Memory(Upgraded),
    /// Its connection is gone: there is nothing to join.
    Gone,
}

/// Joins the client's and the dyno's upgraded connections; returns when
/// the tunnel is over.
async fn run(client: OnUpgrade, dyno: DynoSide, stop: CancellationToken) {
    let client = match client.await {
        Ok(c) => c,
        Err(e) => return tracing::debug!("upgrade did not complete: {e}"),
    };
    let mut c = TokioIo::new(client);
    match dyno {
        DynoSide::Hyper(dyno) => match dyno.await {
            Ok(d) => join(&mut c, &mut TokioIo::new(d), stop).await,
            Err(e) => tracing::debug!("upgrade did not complete: {e}"),
        },
        DynoSide::Memory(Upgraded { early, mut stream }) => {
            if c.write_all(&early).await.is_ok() {
                join(&mut c, &mut stream, stop).await;
            }
        }
        DynoSide::Gone => {}
    }
    let _ = c.shutdown().await;
}

async fn join<A, B>(a: &mut A, b: &mut B, stop: CancellationToken)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    tokio::select! {
        _ = splice(a, b) => {}
        _ = stop.cancelled() => {}
    }
    let _ = b.shutdown().await;
}

/// Copies both ways until one side ends or neither sends for
/// [`TUNNEL_IDLE`]. (`copy_bidirectional` has no idle limit.)
async fn splice<A, B>(a: &mut A, b: &mut B)
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    loop {
        let moved = tokio::time::timeout(TUNNEL_IDLE, async {
            tokio::select! {
                n = ar.read(&mut up) => match n {
                    Ok(n) if n > 0 => bw.write_all(&up[..n]).await.is_ok(),
                    _ => false,
                },
                n = br.read(&mut down) => match n {
                    Ok(n) if n > 0 => aw.write_all(&down[..n]).await.is_ok(),
                    _ => false,
                },
            }
        })
        .await;
        if moved != Ok(true) {
            return;
        }
    }
}

impl Router {
    /// A WebSocket handshake the dyno accepted becomes a tunnel; hop-by-hop
    /// headers go.
    pub(super) fn tunnel<B>(
        &self,
        mut resp: Response<B>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        asked_upgrade: bool,
        dyno_side: impl FnOnce(&mut Response<B>) -> DynoSide,
    ) -> Response<B> {
        let tunnel = resp.status() == StatusCode::SWITCHING_PROTOCOLS && client_upgrade.is_some();
        hop::strip(resp.headers_mut(), tunnel);
        if let (true, Some(client)) = (tunnel, client_upgrade) {
            let dyno = dyno_side(&mut resp);
            self.tasks.spawn(run(client, dyno, self.stop.child_token()));
        } else if asked_upgrade {
            // The scan of this connection stopped at the handshake: the
            // client must start over on a new one.
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}
