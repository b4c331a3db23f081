//! The router's keep-alive connections to one dyno whose `$PORT` is in
//! memory ([`MemPort`]): HTTP/1.1 over a pair of pipes, one pool per dyno
//! instance (it lives in the dyno's [`Backend`](super::Backend)). A
//! connection goes back to the pool once its answer has been read to the
//! end; one the dyno closed while idle is found closed and dropped. A
//! request a pooled connection could not take (the dyno closed it as the
//! request went out, before a byte was sent) is sent again on a new one,
//! as hyper's pooling client does.

use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

use super::body::Capped;
use crate::dyno::door::MemPort;

/// Idle connections kept per dyno; more are closed as they come back.
const IDLE_MAX: usize = 64;

type Sender = SendRequest<Capped>;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened: nothing listens (`H19`).
    #[error("connecting to the dyno: {0}")]
    Connect(std::io::Error),
    /// The dyno took the request and closed without an answer (`H13`).
    #[error(transparent)]
    Http(#[from] hyper::Error),
}

#[derive(Default)]
pub struct Pool {
    idle: Mutex<Vec<Sender>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

/// A connection lent out with an answer, to be given back once the answer
/// has been read to its end.
pub struct Lent {
    pool: Arc<Pool>,
    sender: Sender,
}

impl Lent {
    /// The answer was read whole: the connection may serve again. Its
    /// task may not have seen the end yet; a checkout skips it until it
    /// has (no task is spawned to wait for that).
    pub fn give_back(self) {
        if !self.sender.is_closed() {
            self.pool.put(self.sender);
        }
    }
}

impl Pool {
    fn put(&self, sender: Sender) {
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        if idle.len() < IDLE_MAX {
            idle.push(sender);
        }
    }

    /// The most recently returned connection that can take a request;
    /// closed ones are dropped, ones still finishing an answer stay.
    fn checkout(&self) -> Option<Sender> {
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        let mut i = idle.len();
        while i > 0 {
            i -= 1;
            if idle[i].is_ready() {
                return Some(idle.swap_remove(i));
            }
            if idle[i].is_closed() {
                idle.swap_remove(i);
            }
        }
        None
    }

    async fn open(door: &MemPort) -> Result<Sender, SendError> {
        let stream = door.connect().await.map_err(SendError::Connect)?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }

    /// Sends `req` on an idle connection or a new one.
    pub async fn send(
        self: &Arc<Self>,
        door: &MemPort,
        req: http::Request<Capped>,
    ) -> Result<(http::Response<Incoming>, Lent), SendError> {
        let (mut sender, pooled) = match self.checkout() {
            Some(s) => (s, true),
            None => (Self::open(door).await?, false),
        };
        let req = match sender.try_send_request(req).await {
            Ok(resp) => return Ok((resp, self.lend(sender))),
            Err(mut e) => match e.take_message() {
                // Not sent: a pooled connection closed under it.
                Some(req) if pooled => req,
                _ => return Err(e.into_error().into()),
            },
        };
        let mut sender = Self::open(door).await?;
        let resp = sender.send_request(req).await?;
        Ok((resp, self.lend(sender)))
    }

    fn lend(self: &Arc<Self>, sender: Sender) -> Lent {
        Lent {
            pool: self.clone(),
            sender,
        }
    }
}
