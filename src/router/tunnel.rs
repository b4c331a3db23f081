//! WebSocket (and any other `Upgrade`) tunnels: once the dyno answers the
//! handshake with 101, the router stops speaking HTTP on both connections
//! and copies bytes between them until either side closes, the tunnel
//! sits idle for [`TUNNEL_IDLE`], or the router shuts down.

use std::time::Duration;

use http::{HeaderValue, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::{Router, hop};

/// A tunnel with no byte either way for this long is closed (Heroku's
/// router closes idle WebSockets after 55 s, as it does idle streams: H15).
pub const TUNNEL_IDLE: Duration = Duration::from_secs(55);

/// Joins the client's and the dyno's upgraded connections; returns when
/// the tunnel is over.
pub async fn run(client: OnUpgrade, dyno: OnUpgrade, stop: CancellationToken) {
    let (client, dyno) = match tokio::try_join!(client, dyno) {
        Ok(both) => both,
        Err(e) => return tracing::debug!("upgrade did not complete: {e}"),
    };
    let (mut c, mut d) = (TokioIo::new(client), TokioIo::new(dyno));
    tokio::select! {
        _ = splice(&mut c, &mut d) => {}
        _ = stop.cancelled() => {}
    }
    let _ = c.shutdown().await;
    let _ = d.shutdown().await;
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
    pub(super) fn tunnel(
        &self,
        mut resp: Response<Incoming>,
        client_upgrade: Option<hyper::upgrade::OnUpgrade>,
        asked_upgrade: bool,
    ) -> Response<Incoming> {
        let tunnel = resp.status() == StatusCode::SWITCHING_PROTOCOLS && client_upgrade.is_some();
        hop::strip(resp.headers_mut(), tunnel);
        if let (true, Some(client)) = (tunnel, client_upgrade) {
            let dyno = hyper::upgrade::on(&mut resp);
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
