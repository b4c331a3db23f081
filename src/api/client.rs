//! The CLI's side of the control API.

use std::path::Path;

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::schema::{LogSession, LogSessionCreate};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(
        "the wdyno daemon is not running (no API at {0}): start it with `wdyno daemon`, or set WDYNO_HOME / WDYNO_API_URL"
    )]
    NotRunning(String),
    #[error("{message}")]
    Api {
        status: u16,
        id: String,
        message: String,
    },
    #[error("talking to the daemon: {0}")]
    Http(String),
}

/// A request body: bytes, or a stream (an attached dyno's stdin).
pub struct ReqBody(BoxBody<Bytes, std::io::Error>);

impl From<Bytes> for ReqBody {
    fn from(b: Bytes) -> Self {
        ReqBody(Full::new(b).map_err(|never| match never {}).boxed())
    }
}

impl ReqBody {
    /// A body fed by a channel of chunks; it ends when the sender drops.
    pub fn channel(rx: tokio::sync::mpsc::Receiver<Bytes>) -> Self {
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok(hyper::body::Frame::data(b)), rx))
        });
        ReqBody(BodyExt::boxed(http_body_util::StreamBody::new(stream)))
    }
}

/// An API path from raw segments and query pairs, each percent-encoded,
/// so a value like `web 1` or `web.1&lines=1` stays one value:
/// `path(&["apps", "a", "dynos", "web 1"], &[])` is `/apps/a/dynos/web%201`.
pub fn path(segments: &[&str], query: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse("http://wdyno/").expect("a valid base URL");
    url.path_segments_mut()
        .expect("an http URL has path segments")
        .extend(segments);
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url[url::Position::BeforePath..].to_owned()
}

/// Reads server-sent events out of the chunks of a body.
#[derive(Default)]
pub struct SseParser {
    buf: Vec<u8>,
    name: Option<String>,
    data: Option<String>,
}

impl SseParser {
    /// Takes a chunk; calls `event` for each event it completes.
    pub fn feed(&mut self, chunk: &[u8], event: &mut dyn FnMut(Option<&str>, &str)) {
        self.buf.extend_from_slice(chunk);
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&raw[..raw.len() - 1]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    event(self.name.as_deref(), &data);
                }
                self.name = None;
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.name = Some(value.to_owned()),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                },
                _ => {}
            }
        }
    }
}

/// An answer's JSON body.
async fn json_body<T: DeserializeOwned>(
    resp: hyper::Response<hyper::body::Incoming>,
) -> Result<T, ClientError> {
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| ClientError::Http(e.to_string()))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| ClientError::Http(format!("reading the answer: {e}")))
}

/// A client for one daemon.
#[derive(Debug, Clone)]
pub struct Client {
    addr: String,
    token: String,
}

impl Client {
    /// A client for the API at `url` (`http://127.0.0.1:PORT`; a bare
    /// `HOST:PORT` is taken as http).
    pub fn new(url: &str, token: &str) -> Self {
        let url = url.trim();
        let parsed = url::Url::parse(url)
            .ok()
            .filter(|u| u.scheme() == "http")
            .or_else(|| url::Url::parse(&format!("http://{url}")).ok());
        let addr = match parsed
            .as_ref()
            .and_then(|u| Some((u.host_str()?, u.port_or_known_default()?)))
        {
            Some((host, port)) => format!("{host}:{port}"),
            None => url.trim_end_matches('/').to_owned(),
        };
        Client {
            addr,
            token: token.trim().to_owned(),
        }
    }

    /// `http://HOST:PORT` of the API.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bearer token it sends.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The daemon of `$WDYNO_HOME` (its `api` and `api-token` files), or
    /// `WDYNO_API_URL` with the home's token.
    pub fn from_home(home: &Path) -> Result<Self, ClientError> {
        let url = match std::env::var("WDYNO_API_URL") {
            Ok(u) => u,
            Err(_) => std::fs::read_to_string(home.join("api"))
                .map_err(|_| ClientError::NotRunning(home.join("api").display().to_string()))?,
        };
        let token = std::fs::read_to_string(home.join("api-token")).map_err(|e| {
            ClientError::Http(format!("reading {}: {e}", home.join("api-token").display()))
        })?;
        Ok(Client::new(&url, &token))
    }

    async fn send_raw(
        &self,
        method: Method,
        path: &str,
        body: impl Into<ReqBody>,
        extra: &[(&str, String)],
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let tcp = tokio::net::TcpStream::connect(&self.addr)
            .await
            .map_err(|_| ClientError::NotRunning(format!("http://{}", self.addr)))?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.as_str())
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token));
        for (k, v) in extra {
            req = req.header(*k, v.as_str());
        }
        let req = req
            .body(body.into().0)
            .map_err(|e| ClientError::Http(e.to_string()))?;
        let resp = send
            .send_request(req)
            .await
            .map_err(|e| ClientError::Http(e.to_string()))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Err(ClientError::Api {
            status: status.as_u16(),
            id: v["id"].as_str().unwrap_or("error").to_owned(),
            message: v["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("the daemon answered {status}")),
        })
    }

    /// A JSON request; `body` of `Value::Null` sends none.
    pub async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Value,
    ) -> Result<T, ClientError> {
        let bytes = if body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(serde_json::to_vec(&body).expect("JSON serializes"))
        };
        let resp = self.send_raw(method, path, bytes, &[]).await?;
        json_body(resp).await
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.json(Method::GET, path, Value::Null).await
    }

    /// A GET with headers of its own (a `Range`).
    pub async fn get_with<T: DeserializeOwned>(
        &self,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<T, ClientError> {
        let resp = self
            .send_raw(Method::GET, path, Bytes::new(), headers)
            .await?;
        json_body(resp).await
    }

    /// A request whose answer is a stream of server-sent events: each
    /// event's name (`None` for a plain `message`) and data go to `event`.
    pub async fn events(
        &self,
        method: Method,
        path: &str,
        body: impl Into<ReqBody>,
        extra: &[(&str, String)],
        event: &mut dyn FnMut(Option<&str>, &str),
    ) -> Result<(), ClientError> {
        let resp = self.send_raw(method, path, body, extra).await?;
        let mut body = resp.into_body();
        let mut sse = SseParser::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Http(e.to_string()))?;
            if let Some(data) = frame.data_ref() {
                sse.feed(data, event);
            }
        }
        Ok(())
    }

    /// `logs`: makes a log session, then streams its lines to `line` until
    /// the daemon ends it (at once without `tail`).
    pub async fn logs(
        &self,
        app: &str,
        session: &LogSessionCreate,
        line: &mut dyn FnMut(&str),
    ) -> Result<(), ClientError> {
        let made: LogSession = self
            .json(
                Method::POST,
                &path(&["apps", app, "log-sessions"], &[]),
                serde_json::to_value(session).expect("a session serializes"),
            )
            .await?;
        let url = url::Url::parse(&made.logplex_url)
            .map_err(|e| ClientError::Http(format!("the log session's URL: {e}")))?;
        let at = &url[url::Position::BeforePath..];
        self.events(Method::GET, at, Bytes::new(), &[], &mut |_, data| {
            line(data)
        })
        .await
    }

    /// Whether a status is "not found" (for friendlier messages).
    pub fn is_not_found(e: &ClientError) -> bool {
        matches!(e, ClientError::Api { status, .. } if *status == StatusCode::NOT_FOUND.as_u16())
    }
}

#[cfg(test)]
mod tests {
    use super::path;

    #[test]
    fn api_urls_parse_to_an_address() {
        let addr = |u| super::Client::new(u, "t").addr;
        assert_eq!(addr("http://127.0.0.1:4000\n"), "127.0.0.1:4000");
        assert_eq!(addr("http://127.0.0.1:4000/"), "127.0.0.1:4000");
        assert_eq!(addr("127.0.0.1:4000"), "127.0.0.1:4000");
        assert_eq!(addr("http://[::1]:4000"), "[::1]:4000");
        assert_eq!(addr("http://localhost"), "localhost:80");
    }

    #[test]
    fn server_sent_events_split_across_chunks_come_out_whole() {
        let mut p = super::SseParser::default();
        let mut got = Vec::new();
        let mut on =
            |name: Option<&str>, data: &str| got.push((name.map(str::to_owned), data.to_owned()));
        p.feed(b"event: line\ndata: one\n\nda", &mut on);
        p.feed(b"ta: two\r\ndata: lines\n\n: a comment\n\n", &mut on);
        p.feed(b"event: exit\ndata: 3\n", &mut on);
        p.feed(b"\n", &mut on);
        assert_eq!(
            got,
            vec![
                (Some("line".into()), "one".into()),
                (None, "two\nlines".into()),
                (Some("exit".into()), "3".into()),
            ]
        );
    }

    #[test]
    fn paths_encode_each_segment_and_query_value() {
        assert_eq!(
            path(&["apps", "a", "dynos", "web 1"], &[]),
            "/apps/a/dynos/web%201"
        );
        assert_eq!(
            path(
                &["apps", "a", "builds"],
                &[("lines", "100"), ("dyno", "web.1&lines=1")]
            ),
            "/apps/a/builds?lines=100&dyno=web.1%26lines%3D1"
        );
        assert_eq!(path(&["apps", "a/b"], &[]), "/apps/a%2Fb");
    }
}
