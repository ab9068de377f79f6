//! An in-memory work source for tests: a queue of leases, and a record of
//! everything the runtime sent back.

use crate::error::SourceError;
use crate::source::WorkSource;
use kontinuum_api::work::{Completion, CompletionAck, HeartbeatReply, Lease, NodeId, Work};
use kontinuum_api::{FnRef, TaskSpec};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

#[derive(Default)]
pub(crate) struct FakeSource {
    queue: Mutex<VecDeque<Lease>>,
    queued: Notify,
    pub(crate) lease_sizes: Mutex<Vec<usize>>,
    pub(crate) completions: Mutex<Vec<Completion>>,
    pub(crate) complete_batches: Mutex<Vec<usize>>,
    /// Tokens handed back by `release`.
    pub(crate) released: Mutex<Vec<u64>>,
    pub(crate) heartbeats: Mutex<Vec<(u64, Option<u64>)>>,
    /// What a heartbeat of a token answers (default: all false).
    pub(crate) replies: Mutex<HashMap<u64, HeartbeatReply>>,
    pub(crate) splits: Mutex<Vec<(u64, i64)>>,
    pub(crate) accept_splits: AtomicBool,
    pub(crate) children: Mutex<Vec<(u64, FnRef, u64)>>,
    pub(crate) spawned: Mutex<Vec<TaskSpec>>,
    /// How long each `complete` call takes (a slow engine or network).
    pub(crate) complete_delay: Mutex<Duration>,
    next_node: AtomicU64,
}

pub(crate) fn lease(token: u64, work: Work, lease_ms: u64) -> Lease {
    Lease {
        token,
        node: token,
        attempt: 1,
        work,
        timeout_ms: None,
        lease_ms,
    }
}

impl FakeSource {
    pub(crate) fn push(&self, lease: Lease) {
        self.queue.lock().push_back(lease);
        self.queued.notify_waiters();
    }

    /// Waits until `n` completions arrived (panics after 10 s).
    pub(crate) async fn wait_completions(&self, n: usize) -> Vec<Completion> {
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            {
                let done = self.completions.lock();
                if done.len() >= n {
                    return done.clone();
                }
            }
            assert!(
                Instant::now() < until,
                "timed out waiting for {n} completions"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub(crate) fn completion(&self, token: u64) -> Option<Completion> {
        self.completions
            .lock()
            .iter()
            .find(|c| c.token == token)
            .cloned()
    }
}

impl WorkSource for FakeSource {
    async fn lease(
        &self,
        _pool: &str,
        _worker: &str,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Lease>, SourceError> {
        let until = Instant::now() + wait;
        loop {
            let notified = self.queued.notified();
            {
                let mut q = self.queue.lock();
                if !q.is_empty() {
                    let n = max.min(q.len());
                    let out: Vec<Lease> = q.drain(..n).collect();
                    self.lease_sizes.lock().push(out.len());
                    return Ok(out);
                }
            }
            if tokio::time::timeout_at(until.into(), notified)
                .await
                .is_err()
            {
                return Ok(Vec::new());
            }
        }
    }

    async fn heartbeat(
        &self,
        token: u64,
        progress: Option<u64>,
    ) -> Result<HeartbeatReply, SourceError> {
        self.heartbeats.lock().push((token, progress));
        let mut replies = self.replies.lock();
        let reply = replies.get(&token).cloned().unwrap_or_default();
        // A split request is answered once, as the engine would.
        if let Some(r) = replies.get_mut(&token) {
            r.split = false;
        }
        Ok(reply)
    }

    async fn complete(
        &self,
        completions: Vec<Completion>,
    ) -> Result<Vec<CompletionAck>, SourceError> {
        let delay = *self.complete_delay.lock();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.complete_batches.lock().push(completions.len());
        let acks = vec![CompletionAck::Accepted; completions.len()];
        self.completions.lock().extend(completions);
        Ok(acks)
    }

    async fn release(&self, tokens: Vec<u64>) -> Result<Vec<CompletionAck>, SourceError> {
        let acks = vec![CompletionAck::Accepted; tokens.len()];
        self.released.lock().extend(tokens);
        Ok(acks)
    }

    async fn split(&self, token: u64, at: i64) -> Result<bool, SourceError> {
        self.splits.lock().push((token, at));
        Ok(self.accept_splits.load(Ordering::SeqCst))
    }

    async fn add_child(&self, token: u64, call: FnRef, weight: u64) -> Result<NodeId, SourceError> {
        self.children.lock().push((token, call, weight));
        Ok(self.next_node.fetch_add(1, Ordering::SeqCst) + 1000)
    }

    async fn spawn(&self, _token: u64, spec: TaskSpec) -> Result<NodeId, SourceError> {
        self.spawned.lock().push(spec);
        Ok(self.next_node.fetch_add(1, Ordering::SeqCst) + 1000)
    }
}
