//! A cluster host's log bus as its drains see it: every line goes to the
//! cluster's bus (which every host reads) and to a bus of this host's own
//! lines, which its drains follow, so each line leaves the cluster by one
//! host's drains once, not by every host's.

use std::sync::Arc;

use crate::logbus::{Bus, LogBus, LogFilter, LogLine, Subscription};

pub struct Tee {
    /// The cluster's bus: every read is served from it.
    pub cluster: Bus,
    /// This host's own lines.
    pub own: Bus,
}

impl LogBus for Tee {
    fn open(&self, app: &str) {
        self.cluster.open(app);
        self.own.open(app);
    }

    fn is_open(&self, app: &str) -> bool {
        self.cluster.is_open(app)
    }

    fn forget(&self, app: &str) {
        self.cluster.forget(app);
        self.own.forget(app);
    }

    fn publish(&self, line: LogLine) {
        self.own.publish(line.clone());
        self.cluster.publish(line);
    }

    fn subscribe(
        &self,
        app: &str,
        filter: LogFilter,
        backlog: usize,
        follow: bool,
    ) -> Subscription {
        self.cluster.subscribe(app, filter, backlog, follow)
    }

    fn recent(&self, app: &str, n: usize) -> Vec<Arc<LogLine>> {
        self.cluster.recent(app, n)
    }
}
