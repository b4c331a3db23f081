//! Running a `wasi:http/proxy` dyno: `incoming-handler.handle` is called
//! in a fresh instance per request, pre-instantiated once per release.
//! With `$PORT` in memory the router calls it through the dyno's
//! [`ProxyDoor`] (no socket, one HTTP parse: the router's); with real
//! ports the platform binds `$PORT` and serves HTTP/1.1 with keep-alive.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::p2::bindings::ProxyPre;
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

use super::engine::Pre;
use super::files::DynoFiles;
use super::output::DynoOutput;
use super::sandbox::{DynoData, Sandbox};
use super::{
    Cause, Ended, Exit, Launch, Reporter, Runtime, STATUS_KILLED, STATUS_TERMINATED, Signals, State,
};
use crate::logbus::Bus;

/// Connections one proxy dyno serves at once (only the router connects,
/// and it pools): more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 1024;

/// An answer of the guest's.
pub type Body = UnsyncBoxBody<Bytes, anyhow::Error>;

/// A proxy dyno's handler as the router calls it, in memory.
/// The guest's instances run on the runtime of the dyno's host (where
/// `run` runs), never on the caller's: the router's thread only routes.
#[derive(Default)]
pub struct ProxyDoor {
    server: OnceLock<Arc<Server>>,
    /// The dyno is stopping: no new request is taken.
    closed: AtomicBool,
    /// Requests whose handler has not returned.
    calls: AtomicUsize,
    done: tokio::sync::Notify,
}

impl std::fmt::Debug for ProxyDoor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProxyDoor")
    }
}

/// Why a [`ProxyDoor`] took no request.
#[derive(Debug, thiserror::Error)]
#[error("the dyno is not taking requests (it has not started or is stopping)")]
pub struct Closed;

/// Counts one call until its handler returns.
struct Call(Arc<ProxyDoor>);

impl Drop for Call {
    fn drop(&mut self) {
        if self.0.calls.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.done.notify_waiters();
        }
    }
}

impl ProxyDoor {
    /// Hands `req` to a fresh instance of the handler; its errors answer
    /// 500, as over a socket.
    pub async fn call<B>(
        self: &Arc<Self>,
        req: hyper::Request<B>,
    ) -> Result<hyper::Response<Body>, Closed>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let call = Call(self.clone());
        let Some(server) = self.server.get() else {
            return Err(Closed);
        };
        if self.closed.load(Ordering::SeqCst) {
            return Err(Closed);
        }
        Ok(server.handle(req, Some(call)).await)
    }

    /// Returns once no handler runs.
    async fn idle(&self) {
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.calls.load(Ordering::SeqCst) == 0 {
                return;
            }
            done.await;
        }
    }
}

/// What every request of one proxy dyno shares.
struct Server {
    runtime: Arc<Runtime>,
    /// Where each request's instance runs: the dyno host's runtime, also
    /// when the router calls in from its own thread.
    tasks: tokio::runtime::Handle,
    pre: ProxyPre<DynoData>,
    sandbox: Sandbox,
    files: Arc<DynoFiles>,
    output: DynoOutput,
    signals: Arc<Signals>,
    reporter: Arc<Reporter>,
    args: Vec<String>,
    /// Slots one request's instance takes, and where they come from.
    weight: u32,
    share: super::capacity::ProxyShare,
}

pub(crate) async fn run(
    runtime: Arc<Runtime>,
    bus: Bus,
    launch: Launch,
    signals: Arc<Signals>,
    files: Arc<DynoFiles>,
    reporter: Arc<Reporter>,
    door: Option<Arc<ProxyDoor>>,
) -> Ended {
    let Pre::Proxy(pre) = &launch.prepared.pre else {
        unreachable!("proxy::run is only called for proxy components")
    };
    let sb = launch.sandbox.clone();
    let Some(port) = sb.port else {
        return Ended::failed(
            "a wasi:http/proxy component runs only as a web process (it needs $PORT)".into(),
        );
    };
    let listener = match &door {
        Some(_) => None,
        None => match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(l) => Some(l),
            Err(e) => {
                return Ended::failed(format!("binding $PORT {port}: {e}"));
            }
        },
    };
    // Requests run to completion within the grace: each is its own
    // instance, so "draining" is the platform's job, not the guest's.
    signals.drains.store(true, Ordering::SeqCst);
    let runtime_share = runtime.slots().proxy_share(&sb.app);
    let server = Arc::new(Server {
        runtime,
        tasks: tokio::runtime::Handle::current(),
        pre: pre.clone(),
        output: DynoOutput::new(bus, &sb.app, &sb.dyno),
        sandbox: sb,
        files,
        signals: signals.clone(),
        reporter: reporter.clone(),
        args: launch.args.clone(),
        weight: launch.prepared.weight,
        share: runtime_share,
    });
    if let Some(door) = &door {
        let _ = door.server.set(server.clone());
        reporter.set(State::Up);
        return in_memory(door, &signals, &reporter).await;
    }
    let listener = listener.expect("a listener without a door");
    reporter.set(State::Up);

    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    let mut stop = signals.watch_stop();
    // A stop asked for before this task subscribed (a dyno stopped the
    // moment it started) is seen at the first turn of the loop.
    stop.mark_changed();
    let deadline = loop {
        tokio::select! {
            // At the cap, connections wait in the listen backlog.
            accepted = listener.accept(), if conns.len() < MAX_CONNECTIONS => {
                let Ok((tcp, _)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                let server = server.clone();
                let conn = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(
                        TokioIo::new(tcp),
                        service_fn(move |req| {
                            let server = server.clone();
                            async move { Ok::<_, Infallible>(server.handle(req, None).await) }
                        }),
                    );
                let conn = graceful.watch(conn);
                conns.spawn(async move { let _ = conn.await; });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = stop.changed() => {
                if let Some(deadline) = *stop.borrow_and_update() { break deadline; }
            }
        }
    };
    drop(listener);
    reporter.set(State::Stopping);
    reporter.log("Stopping all processes with SIGTERM");
    let drained = tokio::time::timeout_at(deadline.into(), async {
        graceful.shutdown().await;
        while conns.join_next().await.is_some() {}
    })
    .await;
    let exit = match drained {
        Ok(()) => Exit {
            status: STATUS_TERMINATED,
            cause: Cause::Terminated,
        },
        Err(_) => {
            conns.shutdown().await;
            Exit {
                status: STATUS_KILLED,
                cause: Cause::Killed,
            }
        }
    };
    Ended {
        exit,
        stopped: true,
    }
}

/// Serves through the door until stopped, then lets the handlers that run
/// finish within the grace.
async fn in_memory(door: &Arc<ProxyDoor>, signals: &Signals, reporter: &Reporter) -> Ended {
    let mut stop = signals.watch_stop();
    stop.mark_changed();
    let deadline = loop {
        if stop.changed().await.is_err() {
            break std::time::Instant::now();
        }
        if let Some(deadline) = *stop.borrow_and_update() {
            break deadline;
        }
    };
    door.closed.store(true, Ordering::SeqCst);
    reporter.set(State::Stopping);
    reporter.log("Stopping all processes with SIGTERM");
    let exit = match tokio::time::timeout_at(deadline.into(), door.idle()).await {
        Ok(()) => Exit {
            status: STATUS_TERMINATED,
            cause: Cause::Terminated,
        },
        Err(_) => Exit {
            status: STATUS_KILLED,
            cause: Cause::Killed,
        },
    };
    Ended {
        exit,
        stopped: true,
    }
}

impl Server {
    async fn handle<B>(
        self: &Arc<Self>,
        req: hyper::Request<B>,
        call: Option<Call>,
    ) -> hyper::Response<Body>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        match self.clone().call(req, call).await {
            Ok(resp) => resp,
            Err(why) => {
                if self.signals.over_quota.swap(false, Ordering::SeqCst) {
                    self.reporter.memory_quota_exceeded();
                }
                self.reporter.log(&format!("Request failed: {why}"));
                error_response(500, "Internal Server Error\n")
            }
        }
    }

    async fn call<B>(
        self: Arc<Self>,
        req: hyper::Request<B>,
        call: Option<Call>,
    ) -> Result<hyper::Response<Body>, String>
    where
        B: hyper::body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<wasmtime_wasi_http::Error>,
    {
        // A slot of the proxy reserve, held until the handler is done.
        let slot = self.share.acquire(self.weight).await;
        let mut store = self
            .sandbox
            .store(
                &self.runtime,
                &self.args,
                &self.output,
                self.signals.clone(),
                self.files.clone(),
                None,
            )
            .map_err(|e| e.to_string())?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let wasi_req = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(|e| format!("{e:#}"))?;
        let out = store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(|e| format!("{e:#}"))?;
        let pre = self.pre.clone();
        // The guest may go on streaming the body after it sets the
        // response, so it runs in a task of its own.
        let meter = self.signals.meter().clone();
        let task = self.tasks.spawn(super::meter::Timed::new(
            async move {
                let (_slot, _call) = (slot, call);
                let proxy = pre.instantiate_async(&mut store).await?;
                proxy
                    .wasi_http_incoming_handler()
                    .call_handle(&mut store, wasi_req, out)
                    .await
            },
            meter,
        ));
        match rx.await {
            Ok(Ok(resp)) => Ok(resp.map(|b| b.map_err(anyhow::Error::from).boxed_unsync())),
            Ok(Err(code)) => Err(format!("the handler answered with error {code:?}")),
            Err(_) => match task.await {
                Ok(Ok(())) => Err("the handler returned without setting a response".into()),
                Ok(Err(e)) => Err(format!(
                    "the handler trapped: {}",
                    super::command::trap_summary(&e)
                )),
                Err(e) => Err(format!("the handler task failed: {e}")),
            },
        }
    }
}

fn error_response(status: u16, text: &'static str) -> hyper::Response<Body> {
    let mut resp = hyper::Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *resp.status_mut() = hyper::StatusCode::from_u16(status).expect("valid status");
    resp
}
