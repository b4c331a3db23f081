//! Cluster mode: many hosts, one platform, on NATS JetStream.
//!
//! `wdyno daemon --cluster nats://a:4222,nats://b:4222 --host NAME` makes
//! the daemon a host of the cluster those servers form. What single-host
//! mode keeps in sled, memory and `slugs/` lives in JetStream instead:
//! - `wdyno-ledger` (KV): apps, heads, releases, formation, builds
//!   ([`crate::ledger::NatsLedger`]);
//! - `wdyno-slugs` (object store): slugs by digest, each host caching what
//!   it runs ([`crate::slug::ObjectSlugs`]);
//! - `wdyno-logs` (stream, one subject `wdyno.logs.APP` per app, 1500
//!   lines each): the log bus ([`crate::logbus::StreamBus`]);
//! - `wdyno-hosts` (KV, entries expire): each host's heartbeat;
//! - `wdyno-assign` (KV): app → which host runs each of its dynos, written
//!   by the one scheduler;
//! - `wdyno-dynos` (KV): `APP.HOST` → that host's dynos of the app, what
//!   `ps` and every router read;
//! - `wdyno-leader` (KV, entries expire): the scheduler's lease;
//! - `wdyno-cluster` (KV): the cluster's API token.
//!
//! HTTP traffic never crosses NATS: a router hands a request for a dyno on
//! another host to that host's peer port ([`crate::router`]).
//!
//! Every bucket is replicated on up to three servers (R3 from three
//! servers up), so a minority of servers cannot commit a write.

use std::time::Duration;

use async_nats::jetstream;

pub mod assignments;
pub mod dynos;
pub mod hosts;
pub mod peers;
pub mod schedule;
pub mod tee;

/// How long one JetStream call may take before it fails.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the first JetStream calls are retried while the servers elect
/// their meta leader (measured here: up to ~8 s after they start).
pub const STARTUP_RETRY: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(
        "--cluster {0:?} names no NATS server. Give one or more URLs, comma-separated: \
         --cluster nats://127.0.0.1:4222,nats://127.0.0.1:4223"
    )]
    NoServers(String),
    #[error(
        "--host {0:?} is not a host name: use 1 to 32 letters, digits, '-' or '_' (it names \
         the host in `wdyno hosts` and in the cluster's keys)"
    )]
    BadHost(String),
    #[error("cannot reach the cluster's NATS servers ({servers}): {why}")]
    Connect { servers: String, why: String },
    #[error("the cluster's {what} failed: {why}")]
    JetStream { what: String, why: String },
}

impl ClusterError {
    pub fn jetstream(what: impl Into<String>) -> impl FnOnce(String) -> ClusterError {
        let what = what.into();
        move |why| ClusterError::JetStream { what, why }
    }
}

/// Which cluster to join, and as whom.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// `nats://[user:pass@]host:port`, one per server.
    pub servers: Vec<String>,
    /// This host's name.
    pub host: String,
}

impl ClusterConfig {
    /// From `--cluster` (comma-separated URLs) and `--host`.
    pub fn parse(servers: &str, host: &str) -> Result<Self, ClusterError> {
        let list: Vec<String> = servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            return Err(ClusterError::NoServers(servers.to_owned()));
        }
        let ok = !host.is_empty()
            && host.len() <= 32
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(ClusterError::BadHost(host.to_owned()));
        }
        Ok(ClusterConfig {
            servers: list,
            host: host.to_owned(),
        })
    }
}

/// A connection to the cluster's servers, shared by every part of a host.
#[derive(Clone)]
pub struct Cluster {
    client: async_nats::Client,
    js: jetstream::Context,
    replicas: usize,
    host: String,
}

impl Cluster {
    /// Connects to the servers (any of them; the client fails over between
    /// them) and waits until JetStream answers.
    pub async fn connect(cfg: &ClusterConfig) -> Result<Self, ClusterError> {
        // Shown in errors without the credentials a URL may carry.
        let servers = cfg
            .servers
            .iter()
            .map(|s| match s.split_once('@') {
                Some((scheme_user, host)) => {
                    let scheme = scheme_user.split_once("://").map_or("", |(s, _)| s);
                    format!("{scheme}://…@{host}")
                }
                None => s.clone(),
            })
            .collect::<Vec<_>>()
            .join(",");
        let addrs: Vec<async_nats::ServerAddr> = cfg
            .servers
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map_err(|e: std::io::Error| ClusterError::Connect {
                servers: servers.clone(),
                why: e.to_string(),
            })?;
        // Credentials in a URL (`nats://user:pass@…`, `nats://token@…`)
        // are the connection's.
        let options = match addrs.iter().find(|a| a.username().is_some()) {
            Some(a) => match (a.username(), a.password()) {
                (Some(user), Some(pass)) => {
                    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
                }
                (Some(token), None) => async_nats::ConnectOptions::with_token(token.into()),
                _ => async_nats::ConnectOptions::new(),
            },
            None => async_nats::ConnectOptions::new(),
        };
        let client = options
            .name(format!("wdyno host {}", cfg.host))
            .connection_timeout(CALL_TIMEOUT)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connect(addrs)
            .await
            .map_err(|e| ClusterError::Connect {
                servers: servers.clone(),
                why: e.to_string(),
            })?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(CALL_TIMEOUT);
        let mut cluster = Cluster {
            client,
            js,
            replicas: 1,
            host: cfg.host.clone(),
        };
        cluster
            .retry("first JetStream call", || async {
                cluster.js.query_account().await.map(|_| ())
            })
            .await?;
        // JetStream answers once the servers have formed their cluster:
        // the one it reached names them all, whatever URLs were given.
        let known = cluster.client.server_info().connect_urls.len();
        cluster.replicas = cfg.servers.len().max(known).clamp(1, 3);
        Ok(cluster)
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// How many servers keep each bucket's data.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// This host's name.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// A KV bucket, created when missing. `max_age` zero: entries never
    /// expire.
    pub async fn kv(
        &self,
        bucket: &str,
        max_age: Duration,
    ) -> Result<jetstream::kv::Store, ClusterError> {
        let config = jetstream::kv::Config {
            bucket: bucket.to_owned(),
            history: 1,
            max_age,
            num_replicas: self.replicas,
            ..Default::default()
        };
        self.retry(format!("bucket {bucket}"), || {
            let config = config.clone();
            async move {
                match self.js.get_key_value(bucket).await {
                    Ok(kv) => Ok::<_, String>(kv),
                    Err(_) => self
                        .js
                        .create_key_value(config)
                        .await
                        .map_err(|e| e.to_string()),
                }
            }
        })
        .await
    }

    /// Retries `call` until it succeeds or [`STARTUP_RETRY`] has passed:
    /// what a host does while the servers are still electing leaders.
    pub async fn retry<T, E, F, Fut>(
        &self,
        what: impl Into<String>,
        mut call: F,
    ) -> Result<T, ClusterError>
    where
        E: std::fmt::Display,
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, E>>,
    {
        let what = what.into();
        let deadline = tokio::time::Instant::now() + STARTUP_RETRY;
        let mut pause = Duration::from_millis(100);
        loop {
            match call().await {
                Ok(v) => return Ok(v),
                Err(e) if tokio::time::Instant::now() + pause >= deadline => {
                    return Err(ClusterError::JetStream {
                        what,
                        why: e.to_string(),
                    });
                }
                Err(e) => {
                    tracing::debug!("{what}: {e}; retrying in {pause:?}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}
