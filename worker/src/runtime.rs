//! The worker runtime: leases work for a pool in batches of free slots, runs
//! up to `concurrency` tasks at once, heartbeats the long ones from one loop,
//! and reports outcomes in batches.

use crate::completions::{IN_FLIGHT, Report, flush_loop};
use crate::ctx::{Ctx, TaskInfo, TaskServices};
use crate::error::FnError;
use crate::execute::execute_catching;
use crate::heartbeat::{MAX_TICK, heartbeat_loop};
use crate::registry::Registry;
use crate::shared::{Running, RuntimeConfig, Shared};
use crate::source::WorkSource;
use kontinuum_api::work::{Lease, Work};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

/// A running worker runtime. Stop it with [`Runtime::shutdown`].
pub struct Runtime<S: WorkSource> {
    pub(crate) shared: Arc<Shared<S>>,
    lease_loop: JoinHandle<()>,
    heartbeat_loop: JoinHandle<()>,
    flusher: JoinHandle<()>,
}

impl<S: WorkSource> Runtime<S> {
    /// Starts leasing and running work on the current tokio runtime.
    pub fn start(source: Arc<S>, registry: Arc<Registry>, config: RuntimeConfig) -> Runtime<S> {
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            source: source.clone(),
            registry,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            // Every slot busy while IN_FLIGHT full batches are delivered.
            credits: Arc::new(Semaphore::new(
                config.concurrency + IN_FLIGHT * config.max_batch,
            )),
            running: Mutex::new(HashMap::new()),
            reports: tx,
            stopping: AtomicBool::new(false),
            stop: Notify::new(),
            beat_wake: Notify::new(),
            #[cfg(test)]
            report_delay: Mutex::new(Duration::ZERO),
            config,
        });
        let flusher = tokio::spawn(flush_loop(
            source,
            rx,
            shared.config.max_batch,
            shared.config.flush_after,
        ));
        let heartbeat_loop = tokio::spawn(heartbeat_loop(shared.clone()));
        let lease_loop = tokio::spawn(lease_loop(shared.clone()));
        Runtime {
            shared,
            lease_loop,
            heartbeat_loop,
            flusher,
        }
    }

    /// Tasks running now.
    pub fn running(&self) -> usize {
        self.shared.running.lock().len()
    }

    /// Stops leasing, lets running tasks finish within the grace period,
    /// hands back the rest as retryable failures, and flushes completions.
    pub async fn shutdown(self) {
        let shared = &self.shared;
        shared.stopping.store(true, Ordering::SeqCst);
        shared.stop.notify_waiters();
        if let Err(e) = self.lease_loop.await {
            tracing::error!(error = %e, "lease loop ended abnormally");
        }
        let all = u32::try_from(shared.config.concurrency).unwrap_or(u32::MAX);
        let drained =
            tokio::time::timeout(shared.config.shutdown_grace, shared.slots.acquire_many(all))
                .await;
        if drained.is_err() {
            let left: Vec<u64> = shared.running.lock().keys().copied().collect();
            tracing::warn!(
                tasks = left.len(),
                "shutdown grace over; handing back running tasks"
            );
            // Only what was stopped here: a task that finished meanwhile
            // has reported, and releasing it would throw its outcome away.
            let left: Vec<u64> = left
                .into_iter()
                .filter(|&token| shared.end_running(token, None))
                .collect();
            // Released, not failed: queued again at once, no attempt spent.
            for tokens in left.chunks(shared.config.max_batch.max(1)) {
                if let Err(e) = shared.source.release(tokens.to_vec()).await {
                    tracing::warn!(error = %e, tasks = tokens.len(), "not handed back; they run again when their leases expire");
                }
            }
        }
        let _ = shared.reports.send(Report::Stop);
        if let Err(e) = self.flusher.await {
            tracing::error!(error = %e, "completion flusher ended abnormally");
        }
        self.heartbeat_loop.abort();
    }
}

async fn lease_loop<S: WorkSource>(shared: Arc<Shared<S>>) {
    let config = &shared.config;
    let mut backoff = Duration::from_millis(50);
    while !shared.stopping.load(Ordering::SeqCst) {
        // Wait for one free slot, then take whatever else is free at once.
        let stop = shared.stop.notified();
        tokio::pin!(stop);
        // Registered before the flag is read again: a shutdown in between
        // still wakes this wait, which may otherwise last as long as the
        // longest running task.
        stop.as_mut().enable();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        // Permits go back by themselves when dropped: on every early exit
        // below, and for whatever the source did not fill.
        let first = tokio::select! {
            permit = shared.slots.clone().acquire_owned() => permit,
            () = &mut stop => break,
        };
        let Ok(mut slots) = first else { break };
        while slots.num_permits() < config.max_batch {
            match shared.slots.clone().try_acquire_owned() {
                Ok(p) => slots.merge(p),
                Err(_) => break,
            }
        }
        let want = slots.num_permits();
        let credits = tokio::select! {
            c = shared.credits.clone().acquire_many_owned(u32::try_from(want).unwrap_or(u32::MAX)) => c,
            () = &mut stop => break,
        };
        let Ok(mut credits) = credits else { break };
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let asked = Instant::now();
        let leases = match shared
            .source
            .lease(&config.pool, &config.worker, want, config.lease_wait)
            .await
        {
            Ok(leases) => {
                backoff = Duration::from_millis(50);
                leases
            }
            Err(e) => {
                drop((slots, credits));
                tracing::warn!(error = %e, retry_in = ?backoff, "lease failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let got = leases.len();
        // A source may answer with more than asked; never run more than the slots.
        for lease in leases {
            let (Some(slot), Some(credit)) = (slots.split(1), credits.split(1)) else {
                break;
            };
            start_task(&shared, lease, slot, credit);
        }
        drop((slots, credits));
        if got == 0 && asked.elapsed() < config.lease_wait / 2 {
            // Nothing, and no long poll either (a closing engine answers at
            // once): do not spin.
            tokio::time::sleep(config.lease_wait / 2).await;
        }
    }
}

fn start_task<S: WorkSource>(
    shared: &Arc<Shared<S>>,
    lease: Lease,
    slot: OwnedSemaphorePermit,
    credit: OwnedSemaphorePermit,
) {
    let info = TaskInfo {
        token: lease.token,
        node: lease.node,
        attempt: lease.attempt,
        pool: shared.config.pool.clone(),
        deadline: lease
            .timeout_ms
            .map(|ms| std::time::SystemTime::now() + Duration::from_millis(ms)),
    };
    let services: Arc<dyn TaskServices> = shared.source.clone();
    let ctx = Ctx::new(info, shared.registry.clone(), services);
    let token = lease.token;
    let timeout = lease.timeout_ms.map(Duration::from_millis);
    let task_ctx = ctx.clone();
    let task_shared = shared.clone();
    // Looked up before the task starts: the task itself only counts.
    let counted = shared.config.metrics.as_ref().map(|m| {
        let series = m.function(work_function(&lease.work));
        (series, m.busy(), Instant::now())
    });
    let work = lease.work;
    let task = async move {
        let result = match timeout {
            None => execute_catching(&task_ctx, work).await,
            Some(limit) => tokio::time::timeout(limit, execute_catching(&task_ctx, work))
                .await
                .unwrap_or_else(|_| {
                    Err(FnError::retryable(format!(
                        "timed out after {} ms",
                        limit.as_millis()
                    )))
                }),
        };
        task_shared.running.lock().remove(&token);
        if task_ctx.claim_finish() {
            // Counted once reported: an attempt ended from outside
            // (cancelled, lost, shut down) has no outcome of its own.
            if let Some((series, _, started)) = &counted {
                series.record(result.is_ok(), started.elapsed());
            }
            if let Err(e) = &result {
                tracing::debug!(token, error = %e.message, permanent = e.permanent, "task failed");
            }
            task_shared.report(token, result, Some(credit));
        }
        // Only now: shutdown waits for the slots, then tells the flusher to
        // stop. A slot freed before the report let that stop overtake the
        // outcome, which was then dropped: the worker exited 0 and the task
        // stayed Running until its lease expired.
        drop(slot);
        drop(counted);
    };
    let beat_every = Duration::from_millis((lease.lease_ms / 3).max(1));
    // Hold the lock across spawn so the task cannot finish (and try to
    // remove itself) before it is listed.
    let mut running = shared.running.lock();
    let handle = tokio::spawn(task);
    running.insert(
        token,
        Running {
            ctx,
            last_beat: Instant::now(),
            beat_every,
            abort: handle.abort_handle(),
        },
    );
    drop(running);
    if beat_every < MAX_TICK {
        shared.beat_wake.notify_one();
    }
}

/// The function a lease runs, as metrics name it.
fn work_function(work: &Work) -> &str {
    match work {
        Work::Call { call } => &call.function,
        Work::MapLeaf { function, .. } => &function.function,
        Work::Fold { reducer, .. } => &reducer.function,
        Work::Plan { .. } => kontinuum_api::work::PLAN_FUNCTION,
        Work::Output { .. } => kontinuum_api::work::OUTPUT_FUNCTION,
    }
}
