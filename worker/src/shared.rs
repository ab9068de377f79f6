//! What a runtime's loops share: its configuration, and the attempts in
//! flight. The lease loop starts attempts, the heartbeat loop and shutdown
//! end them from outside, and whichever ends one first reports its outcome.
//! A module below the loops, so that the heartbeat loop (heartbeat.rs) and
//! the runtime that starts it (runtime.rs) need not know each other's
//! insides.

use crate::completions::Report;
use crate::ctx::Ctx;
use crate::error::FnError;
use crate::invocation::FnResult;
use crate::metrics::WorkerMetrics;
use crate::registry::Registry;
use crate::source::WorkSource;
use kontinuum_api::work::{Completion, Outcome};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::AbortHandle;

#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Pool to lease from; "*" = any pool.
    pub pool: String,
    /// This worker's name, as the engine records it on leases.
    pub worker: String,
    /// Tasks running at once.
    pub concurrency: usize,
    /// Most leases per lease call and completions per complete call.
    pub max_batch: usize,
    /// How long one lease call may wait for work (a long poll). Shutdown
    /// waits for the call in flight, so this bounds its latency too.
    pub lease_wait: Duration,
    /// Longest a completion waits for others to share its batch.
    pub flush_after: Duration,
    /// How long shutdown lets running tasks finish before handing them back.
    pub shutdown_grace: Duration,
    /// Where tasks run are counted, if anywhere (`--metrics-listen`).
    pub metrics: Option<Arc<WorkerMetrics>>,
}

impl RuntimeConfig {
    pub fn new(pool: &str, concurrency: usize) -> Self {
        RuntimeConfig {
            pool: pool.to_string(),
            worker: format!("worker-{}", std::process::id()),
            concurrency: concurrency.max(1),
            max_batch: 256,
            lease_wait: Duration::from_millis(100),
            flush_after: Duration::from_millis(1),
            shutdown_grace: Duration::from_secs(10),
            metrics: None,
        }
    }
}

/// A task attempt in flight, as the heartbeat loop and shutdown see it.
pub(crate) struct Running {
    pub(crate) ctx: Ctx,
    pub(crate) last_beat: Instant,
    pub(crate) beat_every: Duration,
    pub(crate) abort: AbortHandle,
}

pub(crate) struct Shared<S> {
    pub(crate) source: Arc<S>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) config: RuntimeConfig,
    pub(crate) running: Mutex<HashMap<u64, Running>>,
    pub(crate) slots: Arc<Semaphore>,
    /// Leased tasks whose outcome is not delivered yet. A lease takes a
    /// credit as well as a slot; the slot comes back when the function
    /// returns, the credit when its outcome is delivered (or the task ends
    /// with nothing to report). Without credits, fast functions ran ahead
    /// of slow deliveries without bound.
    pub(crate) credits: Arc<Semaphore>,
    pub(crate) reports: mpsc::UnboundedSender<Report>,
    pub(crate) stopping: AtomicBool,
    pub(crate) stop: Notify,
    /// Wakes the heartbeat loop early for a task with a short lease.
    pub(crate) beat_wake: Notify,
    /// Tests slow down reports to widen a race with shutdown.
    #[cfg(test)]
    pub(crate) report_delay: Mutex<Duration>,
}

impl<S: WorkSource> Shared<S> {
    pub(crate) fn report(
        &self,
        token: u64,
        result: FnResult,
        credit: Option<OwnedSemaphorePermit>,
    ) {
        #[cfg(test)]
        {
            let delay = *self.report_delay.lock();
            std::thread::sleep(delay);
        }
        let outcome = match result {
            Ok(value) => Outcome::Success { value },
            Err(FnError { message, permanent }) => Outcome::Failure { message, permanent },
        };
        // Fails only after shutdown ended the flusher; nothing can be sent then.
        let _ = self
            .reports
            .send(Report::Done(Completion { token, outcome }, credit));
    }

    /// Ends a running attempt from outside (cancellation, lost lease,
    /// shutdown). `outcome`: what to report, if anything. False when the
    /// attempt had ended (and reported) by itself.
    pub(crate) fn end_running(&self, token: u64, outcome: Option<FnError>) -> bool {
        let Some(running) = self.running.lock().remove(&token) else {
            return false;
        };
        // Claim the outcome before waking the function: woken first, it
        // could report its own ("cancelled") outcome in between.
        let claimed = running.ctx.claim_finish();
        if claimed {
            running.abort.abort();
            if let Some(error) = outcome {
                self.report(token, Err(error), None);
            }
        }
        running.ctx.cancel();
        claimed
    }
}
