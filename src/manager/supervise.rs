//! Following each formation dyno: into the router's table while `up`, out
//! of it otherwise; a crash schedules the next start after the backoff;
//! a dyno taken out of service is stopped once its requests are answered.

use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;

use super::{BACKOFF_RESET, Manager, Slot, backoff};
use crate::dyno::State;
use crate::names::{AppName, DynoName};
use crate::placement::RunningDyno;
use crate::router::table::{Backend, InFlight};

impl Manager {
    /// Follows one dyno: routes it while up, and when it crashes asks its
    /// app's loop to start it again after the backoff.
    pub(super) fn supervise(
        self: &Arc<Self>,
        app: AppName,
        name: DynoName,
        id: u64,
        dyno: Arc<dyn RunningDyno>,
        inflight: Arc<InFlight>,
    ) {
        let me = self.clone();
        let backend = dyno.address().map(|addr| Backend {
            id,
            dyno: name.to_string(),
            addr,
            inflight,
            pool: Arc::default(),
        });
        self.tasks.spawn(async move {
            let mut state = dyno.watch_state();
            let mut up_since: Option<Instant> = None;
            loop {
                let s = *state.borrow_and_update();
                if s == State::Up {
                    up_since.get_or_insert_with(Instant::now);
                }
                match (s, &backend) {
                    // Up just as its app fell asleep: it is being stopped.
                    (State::Up, Some(backend)) if !me.sleeping(&app, id) => {
                        me.routes.add(app.as_str(), backend.clone())
                    }
                    (State::Up, None) => {}
                    _ => me.routes.remove(app.as_str(), id),
                }
                if s.is_final() || state.changed().await.is_err() {
                    break;
                }
            }
            me.routes.remove(app.as_str(), id);
            let crashed = dyno.state() == State::Crashed;
            me.ended(&app, &name, id, crashed, up_since.map(|t| t.elapsed()));
        });
    }

    fn ended(
        self: &Arc<Self>,
        app: &AppName,
        name: &DynoName,
        id: u64,
        crashed: bool,
        up_for: Option<std::time::Duration>,
    ) {
        let Some(lp) = self.existing_loop(app) else {
            return;
        };
        let delay = {
            let mut state = lp.lock();
            state.leaving.retain(|d| !d.state().is_final());
            // A dyno that slept is started at the wake, not after a backoff.
            if !crashed || state.dynos.get(name).is_none_or(|s| s.id != id || s.idle) {
                return;
            }
            if name.process.is_web() {
                let any_up = state
                    .dynos
                    .iter()
                    .any(|(n, s)| n.process.is_web() && s.dyno.state() == State::Up);
                self.routes.set_crashed(app.as_str(), !any_up);
            }
            let Some(slot) = state.dynos.get_mut(name) else {
                return;
            };
            if up_for.is_some_and(|d| d >= BACKOFF_RESET) {
                slot.crashes = 0;
            }
            let delay = backoff(self.cfg.restart_base, slot.crashes);
            slot.crashes += 1;
            slot.since = Utc::now();
            slot.retry_at = Some(Instant::now() + delay);
            delay
        };
        let (me, app) = (self.clone(), app.clone());
        self.tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            me.poke(&app);
        });
    }

    /// Takes a dyno out of service: out of the router's table at once, then
    /// stopped as soon as the requests already sent to it are answered (or
    /// the grace period runs out), so no request is cut off.
    pub(super) fn retire(&self, app: &AppName, slot: Slot) {
        self.routes.remove(app.as_str(), slot.id);
        self.stop_when_answered(slot.dyno, slot.inflight);
    }

    /// Stops `dyno`, out of the router's table already, once the requests
    /// sent to it are answered (or the grace period runs out).
    pub(super) fn stop_when_answered(&self, dyno: Arc<dyn RunningDyno>, inflight: Arc<InFlight>) {
        let grace = self.cfg.grace;
        self.tasks.spawn(async move {
            let _ = tokio::time::timeout(grace, inflight.idle()).await;
            dyno.stop();
        });
    }
}
