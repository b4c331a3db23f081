//! Sleeping apps (`apps:update --sleep-after 30m`): an app's web dynos
//! stop once no request has reached it for its `sleep_after`, and start
//! again on the next request.
//!
//! Only web dynos sleep, as Heroku's eco dynos: a sleeping app is one with
//! no web traffic, and its workers (a queue consumer, a clock) have work
//! of their own that no request would ever wake. The formation is not
//! changed (`web=2` stays `web=2`, and keeps its share of the host's
//! capacity, so a wake always fits): `ps` shows the sleeping dynos
//! `idle`, and the reconcile pass leaves them stopped while the app
//! sleeps.
//!
//! One sleeper task per app that has ever had a `sleep_after` (spawned
//! when one is first set) holds a deadline, the last request's instant
//! (stamped by the router on the table's [`Dormancy`]) plus
//! `sleep_after`, and when it passes with no newer request puts the app
//! to sleep. While the app sleeps the task waits for the router's wake
//! notification and wakes it at once (an app's first request after a
//! sleep waits for a dyno's start, never for a reconcile tick). A
//! deploy, a config change, a scale or a restart wakes a sleeping app too,
//! as Heroku starts an eco app's dynos on those (see
//! [`Manager::request`]). Nothing polls: every wait is a deadline or a
//! notification.
//!
//! The log says it as Heroku does: `Idling` on each web dyno before it
//! stops (then its own `State changed from up to stopping` and exit),
//! `Unidling` before it starts again.
//!
//! [`Dormancy`]: crate::router::wake::Dormancy

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::Manager;
use super::reconcile::AppLoop;
use crate::idling::SleepAfter;
use crate::names::{AppName, DynoName};

/// What an attempt to put an app to sleep found.
enum Sleep {
    /// Its web dynos are stopping; it sleeps.
    Slept,
    /// A request came meanwhile, or one is still being answered (or
    /// held): not idle after all.
    Busy,
    /// It runs no web dyno: there is nothing to stop.
    NoWebDynos,
}

/// What the sleeper waited for.
enum Next {
    /// The deadline passed: the app may be idle.
    Deadline,
    /// A request asked for a wake.
    WakeAsked,
    /// Something changed (woken by a change): look again.
    Look,
}

impl Manager {
    /// `apps:update --sleep-after`: from now on `app`'s web dynos sleep
    /// after `after` without a request; `off` wakes a sleeping app.
    pub fn set_sleep_after(self: &Arc<Self>, app: &AppName, after: SleepAfter) {
        let lp = self.app_loop(app);
        lp.sleep_after.send_replace(after);
        if !after.is_off() && !lp.sleeper.swap(true, Ordering::SeqCst) {
            let (me, app) = (self.clone(), app.clone());
            self.tasks.spawn(async move { me.sleeper(app, lp).await });
        }
    }

    /// `app`'s sleeper, until its loop is closed (see the module doc).
    async fn sleeper(self: Arc<Self>, app: AppName, lp: Arc<AppLoop>) {
        let mut setting = lp.sleep_after.subscribe();
        // After a sleep found no web dyno to stop: not again before this.
        let mut not_before = Instant::now();
        loop {
            let after = setting.borrow_and_update().duration();
            let asleep = lp.lock().asleep;
            if asleep && after.is_none() {
                if self.unidle(&app, &lp) {
                    lp.wake();
                }
                continue;
            }
            let dormancy = self.routes.dormancy(app.as_str());
            let next = async {
                match (asleep, after, &dormancy) {
                    (true, _, Some(d)) => tokio::select! {
                        _ = d.wake_asked() => Next::WakeAsked,
                        _ = lp.unidled.notified() => Next::Look,
                    },
                    (false, Some(after), Some(d)) => {
                        let due =
                            (Instant::now() + after.saturating_sub(d.idle_for())).max(not_before);
                        tokio::time::sleep_until(due).await;
                        Next::Deadline
                    }
                    _ => std::future::pending().await,
                }
            };
            let next = tokio::select! {
                _ = lp.closed.cancelled() => return,
                changed = setting.changed() => match changed {
                    Ok(()) => Next::Look,
                    Err(_) => return,
                },
                next = next => next,
            };
            match (next, after, &dormancy) {
                (Next::Deadline, Some(after), Some(d)) if d.idle_for() >= after => {
                    match self.idle(&app, &lp, after).await {
                        Sleep::Slept => {}
                        // Looked at again an interval from now.
                        Sleep::Busy | Sleep::NoWebDynos => not_before = Instant::now() + after,
                    }
                }
                (Next::WakeAsked, _, _) if self.unidle(&app, &lp) => {
                    lp.wake();
                }
                _ => {}
            }
        }
    }

    /// Puts `app` to sleep if it still has had no request for `after`:
    /// the router holds its requests from now on, and each web dyno is
    /// stopped once the requests it was sent are answered.
    async fn idle(&self, app: &AppName, lp: &AppLoop, after: Duration) -> Sleep {
        // No pass in progress: the dynos seen here are all there are, and
        // none is being started behind this decision.
        let _no_pass = lp.pass.lock().await;
        if lp.closed.is_cancelled() {
            return Sleep::Busy;
        }
        let busy = self
            .routes
            .dormancy(app.as_str())
            .is_none_or(|d| d.idle_for() < after || d.held() > 0);
        let mut state = lp.lock();
        if state.asleep {
            return Sleep::Slept;
        }
        if busy {
            return Sleep::Busy;
        }
        let web: Vec<DynoName> = state
            .dynos
            .keys()
            .filter(|n| n.process.is_web())
            .cloned()
            .collect();
        if web.is_empty() {
            return Sleep::NoWebDynos;
        }
        // A request longer than the interval (a stream, a long poll) is
        // traffic too.
        if web.iter().any(|n| state.dynos[n].inflight.count() > 0) {
            return Sleep::Busy;
        }
        state.asleep = true;
        // Before any dyno leaves the table: no request sees H14 meanwhile.
        self.routes.set_asleep(app.as_str());
        for name in web {
            let Some(slot) = state.dynos.get_mut(&name) else {
                continue;
            };
            slot.idle = true;
            slot.retry_at = None;
            slot.restart = false;
            slot.since = Utc::now();
            self.bus.platform(app.as_str(), &name.to_string(), "Idling");
            self.routes.remove(app.as_str(), slot.id);
            self.stop_when_answered(slot.dyno.clone(), slot.inflight.clone());
        }
        tracing::info!("{app}: idle for {after:?}: web dynos sleep");
        Sleep::Slept
    }

    /// Whether dyno `id` of `app` was stopped because the app sleeps.
    pub(super) fn sleeping(&self, app: &AppName, id: u64) -> bool {
        self.existing_loop(app)
            .is_some_and(|lp| lp.lock().dynos.values().any(|s| s.id == id && s.idle))
    }

    /// Wakes a sleeping `app` (its idle clock starts again); the caller
    /// then wakes its loop, whose pass starts the web dynos. Returns
    /// whether it was asleep.
    pub(super) fn unidle(&self, app: &AppName, lp: &AppLoop) -> bool {
        {
            let mut state = lp.lock();
            if !state.asleep {
                return false;
            }
            state.asleep = false;
            for (name, _) in state.dynos.iter().filter(|(_, s)| s.idle) {
                self.bus
                    .platform(app.as_str(), &name.to_string(), "Unidling");
            }
        }
        if let Some(d) = self.routes.dormancy(app.as_str()) {
            d.touch();
        }
        lp.unidled.notify_one();
        true
    }
}
