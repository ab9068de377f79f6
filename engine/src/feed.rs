//! The change feed: which objects and pools changed, coalesced for each
//! subscriber. Decisions note what they touched (a set insert under the
//! state lock they already hold) and, only when someone subscribed, hand the
//! ids to every subscriber at the end of the decision.

use kontinuum_api::ObjectId;
use parking_lot::{Condvar, Mutex};
use std::collections::HashSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// What changed since the previous [`ChangeFeed::wait`] of this feed. Each
/// object and pool appears once, however often it changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Objects whose status may have changed (submitted, phase, attempts,
    /// counts, progress, result, finished) or that were removed. Sorted.
    pub objects: Vec<ObjectId>,
    /// (namespace, pool) whose queued, running or delayed figures changed.
    /// Sorted.
    pub pools: Vec<(String, String)>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty() && self.pools.is_empty()
    }
}

#[derive(Default)]
struct Pending {
    objects: HashSet<ObjectId>,
    pools: HashSet<(String, String)>,
}

struct Shared {
    pending: Mutex<Pending>,
    ready: Condvar,
}

/// One subscriber's view of the engine's changes ([`crate::Engine::subscribe`]).
/// It sees changes made after it subscribed; dropping it unsubscribes.
pub struct ChangeFeed {
    shared: Arc<Shared>,
}

impl ChangeFeed {
    /// Returns as soon as something changed since the previous call (at
    /// once if something already has), or after `max_wait` with nothing.
    pub fn wait(&self, max_wait: Duration) -> Changes {
        let deadline = Instant::now() + max_wait;
        let mut pending = self.shared.pending.lock();
        while pending.objects.is_empty() && pending.pools.is_empty() {
            if self
                .shared
                .ready
                .wait_until(&mut pending, deadline)
                .timed_out()
            {
                break;
            }
        }
        let Pending { objects, pools } = std::mem::take(&mut *pending);
        drop(pending);
        let mut objects: Vec<ObjectId> = objects.into_iter().collect();
        let mut pools: Vec<(String, String)> = pools.into_iter().collect();
        objects.sort();
        pools.sort();
        Changes { objects, pools }
    }
}

/// The engine's side: every live feed.
#[derive(Default)]
pub struct Subscribers {
    feeds: Vec<Weak<Shared>>,
}

impl Subscribers {
    pub fn is_empty(&self) -> bool {
        self.feeds.is_empty()
    }

    pub fn subscribe(&mut self) -> ChangeFeed {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            ready: Condvar::new(),
        });
        self.feeds.push(Arc::downgrade(&shared));
        ChangeFeed { shared }
    }

    /// Hands the changes to every feed; feeds that were dropped go.
    pub fn publish(&mut self, objects: &[&ObjectId], pools: &[(&str, &str)]) {
        if objects.is_empty() && pools.is_empty() {
            return;
        }
        self.feeds.retain(|weak| {
            let Some(shared) = weak.upgrade() else {
                return false;
            };
            let mut pending = shared.pending.lock();
            for &id in objects {
                if !pending.objects.contains(id) {
                    pending.objects.insert(id.clone());
                }
            }
            for &(ns, pool) in pools {
                let key = (ns.to_string(), pool.to_string());
                pending.pools.insert(key);
            }
            drop(pending);
            shared.ready.notify_all();
            true
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_feed_gets_each_change_once_until_it_reads_them() {
        let mut subs = Subscribers::default();
        let a = subs.subscribe();
        let b = subs.subscribe();
        let x = ObjectId::task("ns", "x");
        let y = ObjectId::future("ns", "y");
        subs.publish(&[&x, &y], &[("ns", "default")]);
        subs.publish(&[&x], &[]);
        let got = a.wait(Duration::ZERO);
        assert_eq!(got.objects, vec![x.clone(), y.clone()]);
        assert_eq!(got.pools, vec![("ns".to_string(), "default".to_string())]);
        assert!(a.wait(Duration::ZERO).is_empty(), "read once");
        assert_eq!(b.wait(Duration::ZERO).objects.len(), 2, "b reads its own");
    }

    #[test]
    fn a_wait_ends_when_a_change_arrives_and_a_dropped_feed_unsubscribes() {
        let mut subs = Subscribers::default();
        let feed = subs.subscribe();
        let gone = subs.subscribe();
        drop(gone);
        let x = ObjectId::task("ns", "x");
        let waiter = std::thread::spawn(move || feed.wait(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(20));
        subs.publish(&[&x], &[]);
        assert_eq!(waiter.join().unwrap().objects, vec![x]);
        assert_eq!(subs.feeds.len(), 1, "the dropped feed is gone");
    }

    #[test]
    fn a_wait_with_nothing_returns_after_max_wait() {
        let mut subs = Subscribers::default();
        let feed = subs.subscribe();
        let t0 = Instant::now();
        assert!(feed.wait(Duration::from_millis(30)).is_empty());
        assert!(t0.elapsed() >= Duration::from_millis(30));
    }
}
