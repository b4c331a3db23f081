//! Whether a release's web dynos came up: what the deploy output says after
//! `Released vN`, so a release that never serves is not reported as a
//! plain success.

use std::sync::Arc;
use std::time::Duration;

use super::Manager;
use crate::dyno::{Cause, Exit, State};
use crate::names::AppName;
use crate::placement::RunningDyno;

/// Time past the boot timeout to wait for a dyno's R10 to be recorded.
const BOOT_SLACK: Duration = Duration::from_secs(5);

/// A web dyno of a new release that did not come up, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootFailure {
    pub dyno: String,
    pub reason: String,
}

impl Manager {
    /// Waits for the web dynos of release `version` of `app` to come up
    /// (or end), each at most the boot timeout: the ones that ended first.
    /// A dyno queued for a slot on a full host is not a failure.
    pub async fn web_boot_failures(&self, app: &AppName, version: u64) -> Vec<BootFailure> {
        let Some(lp) = self.existing_loop(app) else {
            return Vec::new();
        };
        let web: Vec<(String, Arc<dyn RunningDyno>)> = {
            let state = lp.lock();
            state
                .dynos
                .iter()
                .filter(|(name, slot)| name.process.as_str() == "web" && slot.release == version)
                .map(|(name, slot)| (name.to_string(), slot.dyno.clone()))
                .collect()
        };
        let deadline = tokio::time::Instant::now() + self.cfg.boot_timeout + BOOT_SLACK;
        let mut failures = Vec::new();
        for (name, dyno) in web {
            let _ = tokio::time::timeout_at(deadline, dyno.wait_up_or_queued()).await;
            if matches!(dyno.state(), State::Crashed | State::Down) {
                let exit = dyno.wait().await;
                failures.push(BootFailure {
                    dyno: name,
                    reason: reason(&exit, self.cfg.boot_timeout),
                });
            }
        }
        failures
    }
}

/// Why a web dyno ended before it was up (it never listened on `$PORT`),
/// in the words of its log lines.
fn reason(exit: &Exit, boot_timeout: Duration) -> String {
    match &exit.cause {
        Cause::BootTimeout => format!(
            "Error R10 (Boot timeout), it did not bind $PORT within {} s",
            boot_timeout.as_secs()
        ),
        Cause::MemoryQuota => "Error R14 (Memory quota exceeded)".into(),
        Cause::Trapped(_) => format!(
            "it crashed (status {}) before listening on $PORT",
            exit.status
        ),
        Cause::Failed(why) => format!("it failed to start: {why}"),
        Cause::Exited => format!(
            "it exited with status {} before listening on $PORT",
            exit.status
        ),
        Cause::Terminated | Cause::Killed => format!("it was stopped (status {})", exit.status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_read_as_the_log_does() {
        let exit = |status, cause| Exit { status, cause };
        let boot = Duration::from_secs(60);
        assert_eq!(
            reason(&exit(134, Cause::Trapped("wasm trap".into())), boot),
            "it crashed (status 134) before listening on $PORT"
        );
        assert_eq!(
            reason(&exit(1, Cause::Exited), boot),
            "it exited with status 1 before listening on $PORT"
        );
        assert_eq!(
            reason(&exit(137, Cause::BootTimeout), boot),
            "Error R10 (Boot timeout), it did not bind $PORT within 60 s"
        );
    }
}
