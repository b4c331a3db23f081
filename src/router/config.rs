//! The router's settings; the defaults are Heroku's.

use std::time::Duration;

use super::wake;

/// Router settings; the defaults are Heroku's.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Time for a dyno to start answering (H12).
    pub request_timeout: Duration,
    /// Time to connect to a dyno (H19).
    pub connect_timeout: Duration,
    /// Time a dyno's answer may send nothing once it has started (H15).
    pub idle_timeout: Duration,
    /// Time a client has to send its request headers.
    pub header_timeout: Duration,
    /// Largest request body forwarded.
    pub max_body: usize,
    /// Largest request head (request line and headers).
    pub max_head: usize,
    /// Requests that may wait for one dyno to take them (connections
    /// queued for its `accept`) before the router sends it no more: past
    /// it on every dyno of the app, a request is answered `H11` (Heroku's
    /// backlog of 50).
    pub backlog: usize,
    /// Seed for the dyno pick, for tests.
    pub seed: Option<u64>,
    /// Client connections served at once. Each takes two descriptors (the
    /// client's and, while a request is out, the dyno's); past the cap a
    /// client gets the 503 error page and the connection closes, so a
    /// flood of connections cannot take the daemon's descriptors.
    pub max_connections: usize,
    /// The app a host that names none (`localhost:5000`, `127.0.0.1`)
    /// reaches: `wdyno local`'s one app, as `heroku local` serves it.
    pub default_app: Option<String>,
    /// Time a request for a sleeping app waits for a web dyno to be up
    /// (H20).
    pub boot_timeout: Duration,
    /// In a cluster, the token a router shows another host's peer port
    /// when it hands it a request for one of that host's dynos.
    pub peer_token: Option<String>,
}

/// The default of [`RouterConfig::max_connections`].
pub const MAX_CONNECTIONS: usize = 4096;

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(55),
            header_timeout: Duration::from_secs(10),
            max_body: 100 << 20,
            max_head: 16 * 1024,
            backlog: 50,
            seed: None,
            max_connections: MAX_CONNECTIONS,
            default_app: None,
            boot_timeout: wake::DEFAULT_BOOT_TIMEOUT,
            peer_token: None,
        }
    }
}
