//! A handler's processes: each slot starts its process, waits for its
//! hello, serves calls through it until it dies, and starts it again after
//! a backoff. The roster (the functions every hello listed) is what the
//! worker tells the server it serves.

use super::output::{Output, write_loop};
use super::process::{Live, log_loop, read_loop};
use super::spawn::spawn;
use crate::ctx::Function;
use crate::std_fns::describe_exit;
use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, oneshot, watch};
use tokio::task::JoinHandle;

/// How a handler runs. [`HandlerConfig::new`] has the defaults.
#[derive(Clone, Debug)]
pub struct HandlerConfig {
    /// The program and its arguments (`split_command` of `--handler`).
    pub command: Vec<String>,
    /// Processes started (at least 1).
    pub processes: usize,
    /// How long a process may take from start to its hello.
    pub hello_timeout: Duration,
    /// How long a call may go on after the worker stopped waiting for it
    /// (its task timed out or was cancelled) before its process is killed.
    pub abandon_grace: Duration,
    /// How long a call waits for a ready process (all of them restarting)
    /// before it fails, retryable.
    pub ready_wait: Duration,
    /// The first wait before a process is started again; it doubles up to
    /// `restart_max` while the process keeps failing.
    pub restart_initial: Duration,
    pub restart_max: Duration,
    /// How long a process may take to exit after its input is closed at
    /// shutdown before it is killed.
    pub exit_grace: Duration,
}

impl HandlerConfig {
    pub fn new(command: Vec<String>, processes: usize) -> Self {
        HandlerConfig {
            command,
            processes: processes.max(1),
            hello_timeout: Duration::from_secs(60),
            abandon_grace: Duration::from_secs(2),
            ready_wait: Duration::from_secs(30),
            restart_initial: Duration::from_millis(100),
            restart_max: Duration::from_secs(30),
            exit_grace: Duration::from_secs(5),
        }
    }
}

/// A process that lived this long after its hello starts its next restart
/// from the first backoff again.
const HEALTHY_AFTER: Duration = Duration::from_secs(10);

pub(crate) struct PoolInner {
    pub(crate) config: HandlerConfig,
    /// The ready process of each slot, if any.
    slots: Vec<Mutex<Option<Arc<Live>>>>,
    /// Woken whenever a process becomes ready (or fails).
    pub(crate) ready: Arc<Notify>,
    roster: RwLock<BTreeSet<String>>,
    pub(crate) hello_seen: AtomicBool,
    roster_version: watch::Sender<u64>,
    /// Why the last process failed, for calls that find none ready.
    last_failure: Mutex<Option<String>>,
    next_id: AtomicU64,
    next_pick: AtomicUsize,
    closing: watch::Sender<bool>,
    /// One function per name asked for, shared by every call of it.
    pub(crate) functions: Mutex<HashMap<String, Arc<dyn Function>>>,
}

impl PoolInner {
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn serves(&self, function: &str) -> bool {
        self.roster.read().contains(function)
    }

    /// The functions the processes said they serve, sorted.
    pub(crate) fn roster(&self) -> Vec<String> {
        self.roster.read().iter().cloned().collect()
    }

    /// Changes whenever the roster grows.
    pub(crate) fn roster_changes(&self) -> watch::Receiver<u64> {
        self.roster_version.subscribe()
    }

    /// The least busy ready process taking calls, turn by turn among equals.
    pub(crate) fn pick(&self) -> Option<Arc<Live>> {
        let n = self.slots.len();
        let start = self.next_pick.fetch_add(1, Ordering::Relaxed);
        let mut best: Option<Arc<Live>> = None;
        for i in 0..n {
            let slot = self.slots[(start + i) % n].lock();
            if let Some(live) = slot.as_ref()
                && best.as_ref().is_none_or(|b| live.load() < b.load())
                && live.accepting()
            {
                let idle = live.load() == 0;
                best = Some(live.clone());
                if idle {
                    break;
                }
            }
        }
        best
    }

    pub(crate) fn last_failure(&self) -> String {
        self.last_failure
            .lock()
            .clone()
            .unwrap_or_else(|| "the handler's processes are still starting".into())
    }

    fn publish(&self, index: usize, live: Option<Arc<Live>>) {
        *self.slots[index].lock() = live;
    }

    fn add_to_roster(&self, functions: &[String]) {
        let mut roster = self.roster.write();
        let before = roster.len();
        roster.extend(functions.iter().cloned());
        let grew = roster.len() != before;
        drop(roster);
        self.hello_seen.store(true, Ordering::SeqCst);
        if grew {
            self.roster_version.send_modify(|v| *v += 1);
        }
    }
}

/// A handler's processes. Dropping it leaves them running until
/// [`HandlerPool::shutdown`]; the processes are killed when the worker exits.
pub struct HandlerPool {
    pub(super) inner: Arc<PoolInner>,
    supervisors: Mutex<Vec<JoinHandle<()>>>,
}

impl HandlerPool {
    /// Starts the processes (on the current tokio runtime).
    pub fn start(config: HandlerConfig) -> Arc<HandlerPool> {
        let (roster_version, _) = watch::channel(0);
        let (closing, _) = watch::channel(false);
        let inner = Arc::new(PoolInner {
            slots: (0..config.processes).map(|_| Mutex::new(None)).collect(),
            config,
            ready: Arc::new(Notify::new()),
            roster: RwLock::new(BTreeSet::new()),
            hello_seen: AtomicBool::new(false),
            roster_version,
            last_failure: Mutex::new(None),
            next_id: AtomicU64::new(1),
            next_pick: AtomicUsize::new(0),
            closing,
            functions: Mutex::new(HashMap::new()),
        });
        let supervisors = (0..inner.config.processes)
            .map(|index| tokio::spawn(supervise(inner.clone(), index)))
            .collect();
        Arc::new(HandlerPool {
            inner,
            supervisors: Mutex::new(supervisors),
        })
    }

    /// Waits until some process has said hello (true) or failed (false),
    /// at most `limit`: a worker starts serving then, either way.
    pub async fn wait_started(&self, limit: Duration) -> bool {
        let give_up = Instant::now() + limit;
        loop {
            let ready = self.inner.ready.notified();
            tokio::pin!(ready);
            ready.as_mut().enable();
            if self.inner.hello_seen.load(Ordering::SeqCst) {
                return true;
            }
            if self.inner.last_failure.lock().is_some() {
                return false;
            }
            if tokio::time::timeout_at(give_up.into(), ready)
                .await
                .is_err()
            {
                return false;
            }
        }
    }

    /// Why a process last failed, as the worker's log said it, if one did.
    pub fn last_failure(&self) -> Option<String> {
        self.inner.last_failure.lock().clone()
    }

    /// The functions the processes said they serve.
    pub fn roster(&self) -> Vec<String> {
        self.inner.roster()
    }

    /// Closes every process's input (a handler exits at its end) and kills
    /// those still running `exit_grace` later.
    pub async fn shutdown(&self) {
        self.inner.closing.send_replace(true);
        let supervisors: Vec<JoinHandle<()>> = std::mem::take(&mut *self.supervisors.lock());
        for s in supervisors {
            let _ = s.await;
        }
    }
}

/// One slot: start, serve, restart with backoff, until the pool closes.
async fn supervise(pool: Arc<PoolInner>, index: usize) {
    let mut closing = pool.closing.subscribe();
    let mut backoff: Option<Duration> = None;
    loop {
        if *closing.borrow() {
            return;
        }
        let healthy = run_once(&pool, index, &mut closing).await;
        if *closing.borrow() {
            return;
        }
        let wait = match backoff {
            Some(last) if !healthy => (last * 2).min(pool.config.restart_max),
            _ => pool.config.restart_initial,
        };
        backoff = Some(wait);
        tracing::info!(process = index, restart_in = ?wait, "restarting the handler process");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = closing.changed() => return,
        }
    }
}

/// Runs one process from start to death. True if it lived long enough
/// after its hello to count as healthy.
async fn run_once(
    pool: &Arc<PoolInner>,
    index: usize,
    closing: &mut watch::Receiver<bool>,
) -> bool {
    let fail = |why: String| {
        tracing::error!(process = index, command = ?pool.config.command, "handler process failed: {why}");
        *pool.last_failure.lock() = Some(format!("handler process {index} {why}"));
        pool.ready.notify_waiters();
    };
    let mut spawned = match spawn(&pool.config.command, index) {
        Ok(s) => s,
        Err(e) => {
            fail(format!(
                "could not be started ({:?}): {e}",
                pool.config.command
            ));
            return false;
        }
    };
    let pid = spawned.child.id().unwrap_or(0);
    let output = Arc::new(Output::new(spawned.to_handler));
    let live = Arc::new(Live::new(index, pid, output.clone(), pool.ready.clone()));
    tokio::spawn(write_loop(output));
    let mut loggers = Vec::new();
    if let Some(out) = spawned.stdout.take() {
        loggers.push(tokio::spawn(log_loop(live.clone(), "stdout", out)));
    }
    if let Some(err) = spawned.stderr.take() {
        loggers.push(tokio::spawn(log_loop(live.clone(), "stderr", err)));
    }
    let (hello_tx, mut hello_rx) = oneshot::channel();
    let mut reader = tokio::spawn(read_loop(live.clone(), spawned.from_handler, hello_tx));
    let child = &mut spawned.child;
    let hello_by = tokio::time::sleep(pool.config.hello_timeout);
    tokio::pin!(hello_by);
    // Armed when fd 4 ends: a process that closed it but does not exit.
    let exit_by = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(exit_by);
    let (mut hello_open, mut hello_armed, mut reader_open, mut exit_armed) =
        (true, true, true, false);
    let mut ready_at = None;

    // Whatever ends the process, `reason` says what happened to it.
    let reason = loop {
        tokio::select! {
            functions = &mut hello_rx, if hello_open => {
                hello_open = false;
                if let Ok(functions) = functions {
                    tracing::info!(process = index, pid, functions = ?functions, "handler process ready");
                    pool.add_to_roster(&functions);
                    pool.publish(index, Some(live.clone()));
                    pool.ready.notify_waiters();
                    ready_at = Some(Instant::now());
                }
            }
            () = &mut hello_by, if hello_armed && ready_at.is_none() => {
                hello_armed = false;
                live.kill(format!("did not say hello within {} s of starting", pool.config.hello_timeout.as_secs()));
            }
            status = child.wait() => {
                break match status {
                    Ok(s) if ready_at.is_none() => format!("{} before its hello", describe_exit(s)),
                    Ok(s) => describe_exit(s),
                    Err(e) => format!("could not be waited for: {e}"),
                };
            }
            () = live.kill_requested.notified() => {
                let why = live.kill_reason().unwrap_or_else(|| "was stopped".into());
                let _ = child.start_kill();
                let _ = child.wait().await;
                break why;
            }
            _ = &mut reader, if reader_open => {
                reader_open = false;
                // Its output ended: usually it is exiting. Give it a moment.
                exit_by.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(500));
                exit_armed = true;
            }
            () = &mut exit_by, if exit_armed => {
                exit_armed = false;
                live.kill("closed its output (fd 4) but did not exit".into());
            }
            _ = closing.changed() => {
                pool.publish(index, None);
                stop_gracefully(pool, &live, child).await;
                break "was stopped with the worker".into();
            }
        }
    };
    pool.publish(index, None);
    reader.abort();
    // Its stderr, for the message, once the process is gone (a grandchild
    // holding the pipe open gets half a second).
    for logger in loggers {
        let _ = tokio::time::timeout(Duration::from_millis(500), logger).await;
    }
    let failed = live.die(&reason);
    if *closing.borrow() {
        tracing::info!(process = index, pid, "handler process stopped");
    } else {
        let tail = live.stderr_tail();
        let tail = if tail.is_empty() {
            String::new()
        } else {
            format!("; its stderr ended with: {tail}")
        };
        fail(format!(
            "(pid {pid}) {reason}{tail}; {failed} call(s) failed (retryable)"
        ));
    }
    ready_at.is_some_and(|at| at.elapsed() >= HEALTHY_AFTER)
}

/// At shutdown: no more calls; close its input, give it `exit_grace`.
async fn stop_gracefully(pool: &PoolInner, live: &Live, child: &mut tokio::process::Child) {
    live.close_input();
    if tokio::time::timeout(pool.config.exit_grace, child.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            process = live.index,
            pid = live.pid,
            "handler process did not exit; killing it"
        );
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
