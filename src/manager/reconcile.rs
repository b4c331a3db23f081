//! One reconcile loop per app: desired state (the ledger's current release
//! and formation) → running dynos.
//!
//! A change wakes the loop ([`Manager::request`]) or wakes it and waits
//! for a pass that began after the call ([`Manager::reconcile`]). Wakes
//! that come during a pass coalesce into the next one, and passes of one
//! app never overlap, so every decision is made against the dynos that are
//! really there.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chrono::Utc;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use super::{AppState, Manager, ManagerError, Slot, formation_slots};
use crate::dyno::State;
use crate::idling::SleepAfter;
use crate::names::{AppName, DynoName};
use crate::placement::{DynoKind, DynoSpec, RunningDyno};
use crate::router::table::InFlight;

/// An app's loop: its state, and how to wake it and learn a pass ended.
pub(super) struct AppLoop {
    state: Mutex<AppState>,
    wake: Notify,
    /// Requests so far; a pass serves every request made before it began.
    requested: AtomicU64,
    /// The last request a finished pass served, and that pass's error.
    done: watch::Sender<(u64, Option<String>)>,
    pub(super) closed: CancellationToken,
    /// Held by a pass; [`AppLoop::close`] takes it to wait out a pass (and
    /// the sleeper, to decide against the dynos that are really there).
    pub(super) pass: tokio::sync::Mutex<()>,
    /// The app's `sleep_after`, followed by its sleeper ([`super::idle`]).
    pub(super) sleep_after: watch::Sender<SleepAfter>,
    /// Whether the sleeper was spawned (once, on the first setting).
    pub(super) sleeper: AtomicBool,
    /// Woken by a change while asleep: the sleeper looks again.
    pub(super) unidled: Notify,
}

impl AppLoop {
    /// Asks for a pass; returns the request's number (a pass that serves
    /// it reports at least that number as done).
    pub(super) fn wake(&self) -> u64 {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        ticket
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, AppState> {
        self.state.lock().expect("app state lock poisoned")
    }

    /// Ends the loop once any pass in progress ends, stops every dyno it
    /// ran and returns them (to wait for).
    pub(super) async fn close(&self) -> Vec<Arc<dyn RunningDyno>> {
        self.closed.cancel();
        let _no_pass = self.pass.lock().await;
        let state = std::mem::take(&mut *self.lock());
        let dynos: Vec<Arc<dyn RunningDyno>> = state
            .dynos
            .into_values()
            .map(|s| s.dyno)
            .chain(state.leaving)
            .chain(state.one_offs.into_iter().map(|o| o.0))
            .collect();
        for d in &dynos {
            d.stop();
        }
        dynos
    }
}

impl Manager {
    /// The app's loop, started on first use.
    pub(super) fn app_loop(self: &Arc<Self>, app: &AppName) -> Arc<AppLoop> {
        let mut apps = self.apps.lock().expect("manager lock poisoned");
        if let Some(lp) = apps.get(app.as_str()) {
            return lp.clone();
        }
        let lp = Arc::new(AppLoop {
            state: Mutex::default(),
            wake: Notify::new(),
            requested: AtomicU64::new(0),
            done: watch::channel((0, None)).0,
            closed: CancellationToken::new(),
            pass: tokio::sync::Mutex::new(()),
            sleep_after: watch::channel(SleepAfter::OFF).0,
            sleeper: AtomicBool::new(false),
            unidled: Notify::new(),
        });
        apps.insert(app.to_string(), lp.clone());
        let (me, app, lp2) = (self.clone(), app.clone(), lp.clone());
        self.tasks.spawn(async move { me.run_loop(app, lp2).await });
        lp
    }

    /// Wakes the app's loop without waiting for it. A change asks for
    /// it, so a sleeping app wakes too (as Heroku starts an eco app's
    /// dynos on a deploy, a scale or a restart).
    pub fn request(self: &Arc<Self>, app: &AppName) {
        let lp = self.app_loop(app);
        self.unidle(app, &lp);
        lp.wake();
    }

    /// Wakes the app's loop if the app still has one (a backoff timer of a
    /// destroyed app must not start a loop again).
    pub(super) fn poke(&self, app: &AppName) {
        if let Some(lp) = self.existing_loop(app) {
            lp.wake();
        }
    }

    /// Wakes the app's loop (and the app, if it sleeps, as
    /// [`Manager::request`]) and waits until a pass that began after this
    /// call has ended; returns that pass's error, if any.
    pub async fn reconcile(self: &Arc<Self>, app: &AppName) -> Result<(), ManagerError> {
        let lp = self.app_loop(app);
        self.unidle(app, &lp);
        let mut done = lp.done.subscribe();
        let ticket = lp.wake();
        tokio::select! {
            served = done.wait_for(|(served, _)| *served >= ticket) => match served {
                Ok(pass) => match &pass.1 {
                    Some(e) => Err(ManagerError::Reconcile(e.clone())),
                    None => Ok(()),
                },
                Err(_) => Ok(()),
            },
            // Destroyed meanwhile: nothing is left to run.
            _ = lp.closed.cancelled() => Ok(()),
        }
    }

    async fn run_loop(self: Arc<Self>, app: AppName, lp: Arc<AppLoop>) {
        loop {
            tokio::select! {
                _ = lp.wake.notified() => {}
                _ = lp.closed.cancelled() => return,
            }
            let ticket = lp.requested.load(Ordering::SeqCst);
            let result = {
                let _pass = lp.pass.lock().await;
                if lp.closed.is_cancelled() {
                    return;
                }
                self.pass(&app, &lp).await
            };
            let error = result.err().map(|e| {
                self.bus
                    .platform(app.as_str(), "api", &format!("Could not start dynos: {e}"));
                e.to_string()
            });
            lp.done.send_replace((ticket, error));
        }
    }

    /// One pass: scale down what the formation no longer has, then start
    /// what is missing, outdated, asked to restart, or crashed and due;
    /// while the app sleeps, no web dyno (an `idle` one starts at its
    /// wake).
    async fn pass(self: &Arc<Self>, app: &AppName, lp: &AppLoop) -> Result<(), ManagerError> {
        let release = Arc::new(self.ledger.current(app).await?);
        let formation = self.ledger.formation(app).await?;
        if release.slug.is_none() {
            return Ok(());
        }
        let plan = self.host.prepare(app, &release).await?;
        let now = Instant::now();
        let mut to_start: Vec<(DynoName, Option<Slot>)> = Vec::new();
        let asleep = {
            let mut state = lp.lock();
            let asleep = state.asleep;
            state.slots = formation_slots(&formation, &plan)
                .0
                .div_ceil(self.scope.hosts().max(1));
            let excess: Vec<DynoName> = state
                .dynos
                .keys()
                .filter(|n| {
                    n.number > formation.get(n.process.as_str())
                        || plan.procfile.get(n.process.as_str()).is_none()
                        || !self.scope.runs_here(app, n)
                })
                .cloned()
                .collect();
            for name in excess.into_iter().rev() {
                if let Some(slot) = state.dynos.remove(&name) {
                    state.leaving.push(slot.dyno.clone());
                    self.retire(app, slot);
                }
            }
            for (ty, count) in formation.iter() {
                if ty.as_str() == "release" || plan.procfile.get(ty.as_str()).is_none() {
                    continue;
                }
                if asleep && ty.is_web() {
                    continue;
                }
                for n in 1..=count {
                    let name = DynoName::new(ty.clone(), n);
                    if !self.scope.runs_here(app, &name) {
                        continue;
                    }
                    let keep = state.dynos.get(&name).map(|slot| {
                        let crashed = slot.dyno.state() == State::Crashed;
                        // Slept and woken: started now, crashed or not.
                        !slot.idle
                            && match crashed {
                                // Started again only once its backoff ran out.
                                true => slot.retry_at.is_none_or(|t| t > now),
                                false => slot.release == plan.version && !slot.restart,
                            }
                    });
                    match keep {
                        Some(true) => {}
                        Some(false) => {
                            let old = state.dynos.remove(&name);
                            to_start.push((name, old));
                        }
                        None => to_start.push((name, None)),
                    }
                }
            }
            asleep
        };
        for (name, old) in to_start {
            let command = plan
                .procfile
                .get(name.process.as_str())
                .map(|c| c.line.clone())
                .unwrap_or_default();
            let web = name.process.is_web();
            let started = self
                .host
                .start(DynoSpec {
                    app: app.clone(),
                    name: name.to_string(),
                    release: release.clone(),
                    command: command.clone(),
                    kind: if web { DynoKind::Web } else { DynoKind::Worker },
                    stdin: None,
                })
                .await;
            let mut state = lp.lock();
            let dyno = match started {
                Ok(d) => d,
                Err(e) => {
                    // The old dyno stays: nothing it did is undone.
                    if let Some(old) = old {
                        state.dynos.insert(name, old);
                    }
                    return Err(e.into());
                }
            };
            let id = self.dyno_id();
            let inflight = Arc::new(InFlight::default());
            let crashes = old.as_ref().map_or(0, |o| o.crashes);
            state.dynos.insert(
                name.clone(),
                Slot {
                    dyno: dyno.clone(),
                    id,
                    release: plan.version,
                    command,
                    since: Utc::now(),
                    crashes,
                    retry_at: None,
                    restart: false,
                    idle: false,
                    inflight: inflight.clone(),
                },
            );
            self.supervise(app.clone(), name, id, dyno.clone(), inflight);
            if let Some(old) = old.filter(|o| !o.dyno.state().is_final()) {
                // The old dyno serves until its replacement is up.
                state.leaving.push(old.dyno.clone());
                let (me, app) = (self.clone(), app.clone());
                self.tasks.spawn(async move {
                    // On a full host the replacement waits for a slot that
                    // only the old dyno can free: replace it in place.
                    dyno.wait_up_or_queued().await;
                    me.retire(&app, old);
                });
            }
        }
        // Woken (by a change) into a formation with no web dyno: requests
        // held for the wake are answered now, not at the boot timeout.
        if !asleep && !lp.lock().dynos.keys().any(|n| n.process.is_web()) {
            self.routes.set_awake(app.as_str());
        }
        Ok(())
    }
}
