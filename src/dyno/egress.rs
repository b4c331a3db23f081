//! Outgoing HTTP from `wasi:http/outgoing-handler`, under the same port
//! policy as raw sockets: wasmtime's default sender opens its own TCP
//! connection and never asks `socket_addr_check`, so without this a proxy
//! dyno could reach the control API over HTTP.

use http::uri::Scheme;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::ports::PortBook;

pub struct EgressHooks {
    ports: PortBook,
    own: Option<u16>,
    egress: bool,
}

impl EgressHooks {
    pub fn new(ports: PortBook, own: Option<u16>, egress: bool) -> Self {
        EgressHooks { ports, own, egress }
    }

    fn allowed(&self, uri: &http::Uri) -> bool {
        let port = uri.port_u16().unwrap_or(match uri.scheme() {
            Some(s) if *s == Scheme::HTTPS => 443,
            _ => 80,
        });
        self.egress && self.ports.may_connect(self.own, port)
    }
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
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        if !self.allowed(request.uri()) {
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        drop(fut);
        Box::new(async move {
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}
