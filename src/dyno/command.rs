//! Running a `wasi:cli/command` dyno: instantiate, call `run`, watch for
//! `$PORT`, and carry out the stop sequence.

use std::sync::Arc;
use std::time::Instant;

use tokio::time::{Instant as TokioInstant, sleep_until};
use wasmtime_wasi::I32Exit;

use super::engine::EPOCH_TICK;
use super::engine::Pre;
use super::files::DynoFiles;
use super::lifecycle::Watched;
use super::output::DynoOutput;
use super::{
    Cause, Ended, Exit, Launch, Reporter, Runtime, STATUS_KILLED, STATUS_TERMINATED,
    STATUS_TRAPPED, Signals, State,
};
use crate::logbus::Bus;

pub(crate) async fn run(
    runtime: Arc<Runtime>,
    bus: Bus,
    launch: Launch,
    signals: Arc<Signals>,
    files: Arc<DynoFiles>,
    reporter: &Reporter,
) -> Ended {
    let Pre::Command(pre) = &launch.prepared.pre else {
        unreachable!("command::run is only called for command components")
    };
    let sb = &launch.sandbox;
    let output = DynoOutput::new(bus, &sb.app, &sb.dyno);
    let mut store = match sb.store(
        &runtime,
        &launch.args,
        &output,
        signals.clone(),
        files,
        launch.stdin.as_ref(),
    ) {
        Ok(store) => store,
        Err(e) => {
            return Ended::failed(e.to_string());
        }
    };
    // A slot of the host's capacity, held while the guest runs. Waiting for
    // one is not the app's fault, so the boot timeout starts after it.
    let mut stop = signals.watch_stop();
    // A stop asked for before this task subscribed (a dyno stopped the
    // moment it started) is seen at the first turn of the loop.
    stop.mark_changed();
    let weight = launch.prepared.weight;
    let _slot = match runtime.slots().try_dyno(weight) {
        Ok(slot) => slot,
        Err(_) => {
            signals.queued.send_replace(true);
            reporter.log("Waiting for a free dyno slot: this host's dyno capacity is in use");
            tokio::select! {
                slot = runtime.slots().dyno(weight) => slot,
                _ = stop.wait_for(Option::is_some) => {
                    return Ended { exit: Exit { status: STATUS_TERMINATED, cause: Cause::Terminated }, stopped: true };
                }
            }
        }
    };
    let pre = pre.clone();
    let guest = async move {
        let command = pre.instantiate_async(&mut store).await?;
        command.wasi_cli_run().call_run(&mut store).await
    };
    let mut guest = Watched::new(guest, signals.clone());

    if !launch.web {
        reporter.set(State::Up);
    }
    let boot_deadline = TokioInstant::now() + launch.boot_timeout;
    let mut listening = signals.watch_listening();
    let mut kill_at: Option<TokioInstant> = None;
    // While stopping a guest that does not drain: how often to look whether
    // it has gone idle (and so takes SIGTERM's default action).
    let mut idle_check = tokio::time::interval(EPOCH_TICK * 2);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let outcome = loop {
        let booting = launch.web && *reporter.state.borrow() == State::Starting;
        tokio::select! {
            res = &mut guest => break Some(res),
            // The policy check that sets `listening` runs inside
            // wasmtime's `listen` host call, and `listen(2)` follows it
            // without yielding: by the time this task runs again, the port
            // accepts connections.
            _ = listening.changed(), if booting => {
                reporter.set(State::Up);
            }
            _ = sleep_until(boot_deadline), if booting => {
                signals.request_stop(Instant::now());
                return Ended { exit: Exit { status: STATUS_KILLED, cause: Cause::BootTimeout }, stopped: false };
            }
            _ = stop.changed(), if kill_at.is_none() => {
                let Some(deadline) = *stop.borrow_and_update() else { continue };
                reporter.set(State::Stopping);
                reporter.log("Stopping all processes with SIGTERM");
                kill_at = Some(TokioInstant::from_std(deadline));
            }
            // A guest that does not drain ends as soon as it is parked in the
            // host (waiting on a socket, a timer), as a process without a
            // SIGTERM handler would; one that keeps computing runs until the
            // deadline kills it.
            _ = idle_check.tick(), if kill_at.is_some() && !signals.drains() => {
                if signals.parked() {
                    break None;
                }
            }
            _ = sleep_until(kill_at.unwrap_or_else(TokioInstant::now)), if kill_at.is_some() => {
                return Ended { exit: Exit { status: STATUS_KILLED, cause: Cause::Killed }, stopped: true };
            }
        }
    };
    let stopped = signals.stop_deadline().is_some();
    let exit = match outcome {
        None => Exit {
            status: STATUS_TERMINATED,
            cause: Cause::Terminated,
        },
        Some(res) => exit_of(res, &signals),
    };
    Ended { exit, stopped }
}

/// Maps what `run` returned to an exit status.
pub(crate) fn exit_of(res: wasmtime::Result<Result<(), ()>>, signals: &Signals) -> Exit {
    let exited = |status| Exit {
        status,
        cause: Cause::Exited,
    };
    match res {
        Ok(Ok(())) => exited(0),
        Ok(Err(())) => exited(1),
        Err(e) => {
            if let Some(code) = e.downcast_ref::<I32Exit>() {
                exited(code.0)
            } else if signals.over_quota() {
                Exit {
                    status: STATUS_KILLED,
                    cause: Cause::MemoryQuota,
                }
            } else {
                Exit {
                    status: STATUS_TRAPPED,
                    cause: Cause::Trapped(trap_summary(&e)),
                }
            }
        }
    }
}

/// The first line of a trap's message and its trap code, without the
/// wasm backtrace.
pub(crate) fn trap_summary(e: &wasmtime::Error) -> String {
    // A host call that failed (the handle table full, say) is wrapped in a
    // context whose first line is only "error while executing at wasm
    // backtrace:"; the cause says what happened.
    if let Some(full) = e
        .chain()
        .find_map(|c| c.downcast_ref::<wasmtime::component::ResourceTableError>())
    {
        return match full {
            wasmtime::component::ResourceTableError::Full => format!(
                "the dyno holds {} handles (files, sockets, streams, pollables), its limit",
                super::sandbox::MAX_HANDLES
            ),
            other => format!("a host call failed: {other}"),
        };
    }
    let trap = match e.downcast_ref::<wasmtime::Trap>() {
        Some(t) => t.to_string(),
        None => e.root_cause().to_string(),
    };
    trap.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("trap")
        .to_owned()
}
