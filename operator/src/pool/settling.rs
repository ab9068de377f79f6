//! Futures the job controllers hold back for a moment before submitting
//! them (`reconcile::joining::SETTLE`, so that the resources applied with
//! them exist first), counted for the scaler of their pool: the work of a
//! map is in the demand from the reconcile that sees it, not a second or
//! two later when the engine gets it. One entry per settling future, made
//! and dropped by its own reconciles; each change wakes the pool's
//! controller through the same channel as the engine's changes.

use kontinuum_api::WorkerPool;
use kube::runtime::reflector::ObjectRef;
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::broadcast;

/// (namespace, future) → (pool, tasks ahead).
type Entries = HashMap<(String, String), (String, u64)>;

pub struct Settling {
    entries: Mutex<Entries>,
    pools: broadcast::Sender<ObjectRef<WorkerPool>>,
}

impl Settling {
    /// `pools`: the WorkerPool controllers' triggers.
    pub fn new(pools: broadcast::Sender<ObjectRef<WorkerPool>>) -> Settling {
        Settling {
            entries: Mutex::new(HashMap::new()),
            pools,
        }
    }

    /// The future `name` will put `tasks` tasks in `pool` once submitted.
    pub fn hold(&self, namespace: &str, name: &str, pool: &str, tasks: u64) {
        let key = (namespace.to_string(), name.to_string());
        let entry = (pool.to_string(), tasks);
        let before = self.entries.lock().insert(key, entry.clone());
        if before.as_ref() != Some(&entry) {
            if let Some((old, _)) = before.filter(|(old, _)| old != pool) {
                self.wake(namespace, &old);
            }
            self.wake(namespace, pool);
        }
    }

    /// The future is submitted (its tasks are the engine's to count now),
    /// or gone.
    pub fn release(&self, namespace: &str, name: &str) {
        let key = (namespace.to_string(), name.to_string());
        let removed = self.entries.lock().remove(&key);
        if let Some((pool, _)) = removed {
            self.wake(namespace, &pool);
        }
    }

    /// Tasks of the futures settling for (namespace, pool).
    pub fn tasks(&self, namespace: &str, pool: &str) -> u64 {
        self.entries
            .lock()
            .iter()
            .filter(|((ns, _), (p, _))| ns == namespace && p == pool)
            .fold(0u64, |sum, (_, (_, t))| sum.saturating_add(*t))
    }

    fn wake(&self, namespace: &str, pool: &str) {
        // No receiver (controllers starting): their first reconcile reads
        // the figures anyway.
        let _ = self.pools.send(ObjectRef::new(pool).within(namespace));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settling_futures_count_for_their_pool_until_released_and_wake_it() {
        let (tx, mut rx) = broadcast::channel(16);
        let s = Settling::new(tx);
        s.hold("a", "big", "p", 100);
        s.hold("a", "small", "p", 3);
        s.hold("b", "big", "p", 7);
        assert_eq!(
            (s.tasks("a", "p"), s.tasks("b", "p"), s.tasks("a", "q")),
            (103, 7, 0)
        );
        let woken: Vec<String> = std::iter::from_fn(|| rx.try_recv().ok())
            .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
            .collect();
        assert_eq!(woken, ["a/p", "a/p", "b/p"]);
        s.hold("a", "big", "p", 100);
        assert!(rx.try_recv().is_err(), "nothing changed, no wake-up");
        s.hold("a", "big", "q", 100);
        assert_eq!((s.tasks("a", "p"), s.tasks("a", "q")), (3, 100));
        assert_eq!(
            std::iter::from_fn(|| rx.try_recv().ok()).count(),
            2,
            "both pools of a future that moved"
        );
        s.release("a", "big");
        s.release("a", "never-held");
        assert_eq!(s.tasks("a", "q"), 0);
        assert_eq!(std::iter::from_fn(|| rx.try_recv().ok()).count(), 1);
    }
}
