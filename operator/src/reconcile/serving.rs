//! Whether anything will run a job: a WorkerPool of its pool in its
//! namespace, or connected workers that serve it. Pure; the reconciler
//! reads the pools' cache and the worker roster and tells the status
//! writer, which shows `Ready` False, `NoWorkerPool` with the command that
//! makes a pool, and a Warning Event once.
//!
//! Judging too early would warn of pools that are on their way: a
//! WorkerPool applied in the same `kubectl apply` as the job, or workers
//! that were connected to the previous leader and have not asked this one
//! for work yet. So a job is judged only once it is [`GRACE`] old, the
//! operator has led for [`GRACE`], and the pools' cache has been filled.

use std::time::Duration;

/// How long a job, and a new leader, wait before a missing pool counts.
pub const GRACE: Duration = Duration::from_secs(5);
/// How often a job nothing serves is looked at again (so that the status
/// clears soon after a pool appears).
pub const RECHECK: Duration = Duration::from_secs(5);

/// What was read.
#[derive(Clone, Copy, Debug)]
pub struct Seen {
    /// A WorkerPool of the job's pool exists in its namespace.
    pub pool_exists: bool,
    /// Workers that serve the pool there (confined to the namespace, or on
    /// the shared token), heard from lately.
    pub connected_workers: u32,
    /// The pools' cache has been filled (otherwise `pool_exists` means
    /// nothing yet).
    pub pools_synced: bool,
    /// Since the job was created, and since this operator began to lead.
    pub age: Duration,
    pub leading_for: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Serving {
    Served,
    Unserved,
    /// Cannot tell yet: look again after this long.
    TooEarly(Duration),
}

pub fn judge(seen: Seen) -> Serving {
    if crate::status::unserved::served(seen.pool_exists, seen.connected_workers) {
        return Serving::Served;
    }
    let wait = GRACE
        .saturating_sub(seen.age)
        .max(GRACE.saturating_sub(seen.leading_for));
    if !seen.pools_synced {
        return Serving::TooEarly(wait.max(Duration::from_secs(1)));
    }
    if !wait.is_zero() {
        return Serving::TooEarly(wait);
    }
    Serving::Unserved
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen() -> Seen {
        Seen {
            pool_exists: false,
            connected_workers: 0,
            pools_synced: true,
            age: Duration::from_secs(60),
            leading_for: Duration::from_secs(60),
        }
    }

    #[test]
    fn a_pool_or_a_connected_worker_serves() {
        let pool = Seen {
            pool_exists: true,
            ..seen()
        };
        assert_eq!(judge(pool), Serving::Served);
        let worker = Seen {
            connected_workers: 1,
            ..seen()
        };
        assert_eq!(judge(worker), Serving::Served);
        assert_eq!(judge(seen()), Serving::Unserved);
    }

    #[test]
    fn nothing_is_judged_before_the_grace_or_an_unfilled_cache() {
        let young = Seen {
            age: Duration::from_secs(2),
            ..seen()
        };
        assert_eq!(judge(young), Serving::TooEarly(Duration::from_secs(3)));
        let new_leader = Seen {
            leading_for: Duration::from_secs(1),
            ..seen()
        };
        assert_eq!(judge(new_leader), Serving::TooEarly(Duration::from_secs(4)));
        let unsynced = Seen {
            pools_synced: false,
            ..seen()
        };
        assert_eq!(judge(unsynced), Serving::TooEarly(Duration::from_secs(1)));
        // Served needs no waiting.
        let served_young = Seen {
            pool_exists: true,
            age: Duration::ZERO,
            pools_synced: false,
            ..seen()
        };
        assert_eq!(judge(served_young), Serving::Served);
    }
}
