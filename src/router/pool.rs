//! The router's keep-alive connections to one dyno whose `$PORT` is in
//! memory ([`MemPort`]): HTTP/1.1 over a pair of pipes, spoken by
//! [`wire`](super::wire), one pool per dyno instance (it lives in the
//! dyno's [`Backend`](super::Backend)). A connection goes back to the pool
//! from its answer's last byte; one the dyno closed while idle is found
//! closed at checkout and dropped. A request that found a pooled
//! connection closed under it goes again on a new one when none of it was
//! read, or when it is bodiless and idempotent.

use std::sync::{Arc, Mutex};

use super::body::Capped;
use super::wire::{self, AnswerBody, Conn, SendFailed, WireError};
use crate::dyno::door::MemPort;

/// Idle connections kept per dyno; more are closed as they come back.
const IDLE_MAX: usize = 64;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No connection could be opened: nothing listens (`H19`).
    #[error("connecting to the dyno: {0}")]
    Connect(std::io::Error),
    /// The dyno took the request and gave no answer, or a malformed one
    /// (`H13`).
    #[error(transparent)]
    Wire(#[from] WireError),
}

#[derive(Default)]
pub struct Pool {
    pub(super) idle: Mutex<Vec<Conn>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pool")
    }
}

impl Pool {
    /// An answer was read to its end on `conn`: it may serve again.
    pub(super) fn put(&self, conn: Conn) {
        if !conn.is_reusable() {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        if idle.len() < IDLE_MAX {
            idle.push(conn);
        }
    }

    /// The most recently returned connection still open; closed ones are
    /// dropped.
    pub(super) fn checkout(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        while let Some(conn) = idle.pop() {
            if conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    /// Sends `req` on an idle connection or a new one.
    pub async fn send(
        self: &Arc<Self>,
        door: &MemPort,
        req: http::Request<Capped>,
    ) -> Result<http::Response<AnswerBody>, SendError> {
        let open = || async { door.connect().await.map(Conn::new) };
        wire::send(self, self.checkout(), open, req)
            .await
            .map_err(|e| match e {
                SendFailed::Connect(e) => SendError::Connect(e),
                SendFailed::Wire(e) => SendError::Wire(e),
            })
    }
}
