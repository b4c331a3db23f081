//! How an app's requests are spread over its web dynos (`wdyno
//! apps:update --routing`): a pure type the ledger keeps and the router's
//! table follows.

/// How an app's requests are spread over its web dynos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Routing {
    /// A uniformly random up dyno, as Heroku's router.
    #[default]
    Random,
    /// The dyno with the fewest requests in flight (of two picked at
    /// random, the power of two choices, past 64 dynos): a slow request no
    /// longer holds up the requests sent after it to the same dyno.
    LeastConnections,
}

impl Routing {
    pub fn as_str(self) -> &'static str {
        match self {
            Routing::Random => "random",
            Routing::LeastConnections => "least-connections",
        }
    }

    pub fn parse(s: &str) -> Option<Routing> {
        match s {
            "random" => Some(Routing::Random),
            "least-connections" => Some(Routing::LeastConnections),
            _ => None,
        }
    }
}
