//! Pure policies: retry backoff, debounce, exclusive sections, shard
//! splitting and when a running leaf should split. No I/O, no clocks (time
//! comes in as an argument), each unit-tested on its own.

use crate::records::{DebounceState, ExclusiveState, RetrySettings};
use kontinuum_api::work::NodeId;

/// Delay before the retry that follows failed attempt number `attempt` (1-based).
pub fn backoff_ms(retry: &RetrySettings, attempt: u32) -> u64 {
    let exponent = attempt.saturating_sub(1).min(62) as i32;
    let delay = retry.initial_ms as f64 * retry.factor.max(1.0).powi(exponent);
    if delay.is_finite() {
        (delay as u64).min(retry.max_ms)
    } else {
        retry.max_ms
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum AfterFailure {
    RetryAt(u64),
    GiveUp,
}

/// What follows a failed attempt.
pub fn after_failure(
    retry: &RetrySettings,
    attempt: u32,
    permanent: bool,
    now_ms: u64,
) -> AfterFailure {
    if permanent || attempt >= retry.max_attempts {
        AfterFailure::GiveUp
    } else {
        AfterFailure::RetryAt(now_ms + backoff_ms(retry, attempt))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Debounce {
    /// A run is scheduled and has not started: the call folds into it.
    MergeInto(NodeId),
    /// Schedule a run at this time.
    ScheduleAt(u64),
}

/// Debounce per key. A call merges into a run that is scheduled and has not
/// started (that run still comes after the call, so no call goes without a
/// later run); otherwise the run waits `initial`, and at least `repeat` since
/// the previous run started, so there is at most one run per `repeat`.
pub fn debounce(state: &DebounceState, now_ms: u64, initial_ms: u64, repeat_ms: u64) -> Debounce {
    if let Some(pending) = state.pending {
        return Debounce::MergeInto(pending);
    }
    let earliest_by_repeat = state
        .last_run_ms
        .map_or(0, |last| last.saturating_add(repeat_ms));
    Debounce::ScheduleAt((now_ms + initial_ms).max(earliest_by_repeat))
}

#[derive(Debug, PartialEq, Eq)]
pub enum Exclusive {
    /// Nobody holds the section: this call takes it and runs.
    Run,
    /// The section is busy: this call becomes the one rerun after it.
    Rerun,
    /// Folds into a run that is already coming (the holder or the rerun).
    MergeInto(NodeId),
}

pub fn exclusive(state: &ExclusiveState, rerun_on_skip: bool) -> Exclusive {
    match (state.holder, state.rerun) {
        (None, _) => Exclusive::Run,
        (Some(_), Some(rerun)) => Exclusive::MergeInto(rerun),
        (Some(_), None) if rerun_on_skip => Exclusive::Rerun,
        (Some(holder), None) => Exclusive::MergeInto(holder),
    }
}

/// Splits positions `start..end` into at most `fanout` contiguous parts made
/// of whole shards of `shard` positions, so leaves are full shards and the
/// tree is O(log n) deep.
pub fn split_range(start: u64, end: u64, fanout: u32, shard: u64) -> Vec<(u64, u64)> {
    let shard = shard.max(1);
    let len = end.saturating_sub(start);
    if len == 0 {
        return Vec::new();
    }
    let shards = len.div_ceil(shard);
    let parts = shards.min(fanout.max(2) as u64);
    let mut out = Vec::with_capacity(parts as usize);
    let mut at = start;
    for i in 0..parts {
        // Spread the shards as evenly as possible: the first `rem` parts get one more.
        let count = shards / parts + u64::from(i < shards % parts);
        let next = (at + count * shard).min(end);
        out.push((at, next));
        at = next;
    }
    out
}

/// Whether a running map leaf should give the rest of its slice to idle workers.
pub fn should_split(
    running_ms: u64,
    split_after_ms: u64,
    units_left: u64,
    idle_capacity: bool,
) -> bool {
    idle_capacity && running_ms >= split_after_ms && units_left >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        let r = RetrySettings {
            max_attempts: 5,
            initial_ms: 100,
            factor: 2.0,
            max_ms: 350,
        };
        assert_eq!(
            [1, 2, 3, 4].map(|a| backoff_ms(&r, a)),
            [100, 200, 350, 350]
        );
        assert_eq!(
            after_failure(&r, 1, false, 1000),
            AfterFailure::RetryAt(1100)
        );
        assert_eq!(after_failure(&r, 1, true, 1000), AfterFailure::GiveUp);
        assert_eq!(after_failure(&r, 5, false, 1000), AfterFailure::GiveUp);
    }

    #[test]
    fn debounce_merges_into_a_pending_run_and_spaces_runs_by_repeat() {
        let fresh = DebounceState::default();
        assert_eq!(debounce(&fresh, 1000, 60, 500), Debounce::ScheduleAt(1060));
        let pending = DebounceState {
            pending: Some(7),
            last_run_ms: None,
        };
        assert_eq!(debounce(&pending, 1001, 60, 500), Debounce::MergeInto(7));
        let ran = DebounceState {
            pending: None,
            last_run_ms: Some(1060),
        };
        assert_eq!(debounce(&ran, 1100, 60, 500), Debounce::ScheduleAt(1560));
        assert_eq!(debounce(&ran, 3000, 60, 500), Debounce::ScheduleAt(3060));
    }

    #[test]
    fn exclusive_collapses_into_one_rerun() {
        let free = ExclusiveState::default();
        assert_eq!(exclusive(&free, true), Exclusive::Run);
        let held = ExclusiveState {
            holder: Some(1),
            rerun: None,
        };
        assert_eq!(exclusive(&held, true), Exclusive::Rerun);
        assert_eq!(exclusive(&held, false), Exclusive::MergeInto(1));
        let both = ExclusiveState {
            holder: Some(1),
            rerun: Some(2),
        };
        assert_eq!(exclusive(&both, true), Exclusive::MergeInto(2));
    }

    #[test]
    fn split_uses_whole_shards_and_covers_everything() {
        assert_eq!(
            split_range(0, 10, 8, 3),
            vec![(0, 3), (3, 6), (6, 9), (9, 10)]
        );
        let parts = split_range(0, 10_000_000, 8, 10_000);
        assert_eq!(parts.len(), 8);
        assert_eq!(parts[0], (0, 1_250_000));
        assert_eq!(parts.last().map(|p| p.1), Some(10_000_000));
        for w in parts.windows(2) {
            assert_eq!(w[0].1, w[1].0);
        }
        // 1000 shards over fanout 8 at every level gives exactly 1000 leaves.
        fn leaves(s: u64, e: u64) -> u64 {
            if e - s <= 10_000 {
                1
            } else {
                split_range(s, e, 8, 10_000)
                    .iter()
                    .map(|&(a, b)| leaves(a, b))
                    .sum()
            }
        }
        assert_eq!(leaves(0, 10_000_000), 1000);
        assert!(split_range(5, 5, 8, 1).is_empty());
    }

    #[test]
    fn split_hint_needs_time_room_and_idle_workers() {
        assert!(should_split(2500, 2000, 10, true));
        assert!(!should_split(1500, 2000, 10, true));
        assert!(!should_split(2500, 2000, 1, true));
        assert!(!should_split(2500, 2000, 10, false));
    }
}
