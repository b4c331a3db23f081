//! Running a `wasi:http/proxy` dyno: the platform binds `$PORT`, serves
//! HTTP/1.1 with keep-alive, and calls `incoming-handler.handle` in a fresh
//! instance per request, pre-instantiated once per release.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::{Bytes, Incoming};
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

type Body = UnsyncBoxBody<Bytes, anyhow::Error>;

/// What every request of one proxy dyno shares.
struct Server {
    runtime: Arc<Runtime>,
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
    let listener = match TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            return Ended::failed(format!("binding $PORT {port}: {e}"));
        }
    };
    // Requests run to completion within the grace: each is its own
    // instance, so "draining" is the platform's job, not the guest's.
    signals.drains.store(true, Ordering::SeqCst);
    let runtime_share = runtime.slots().proxy_share(&sb.app);
    let server = Arc::new(Server {
        runtime,
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
                            async move { Ok::<_, Infallible>(server.handle(req).await) }
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

impl Server {
    async fn handle(self: &Arc<Self>, req: hyper::Request<Incoming>) -> hyper::Response<Body> {
        match self.clone().call(req).await {
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

    async fn call(
        self: Arc<Self>,
        req: hyper::Request<Incoming>,
    ) -> Result<hyper::Response<Body>, String> {
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
        let task = tokio::spawn(super::meter::Timed::new(
            async move {
                let _slot = slot;
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
