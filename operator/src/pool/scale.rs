//! How many worker replicas a pool should have. Pure: the scaler's memory
//! ([`ScaleMemory`]) goes in and comes out, time is an argument.
//!
//! desired = clamp(ceil((queued + running + due delayed) / targetPerReplica),
//! min, max). Up at once; down only once the demand has not grown for
//! `scaleDownDelay`, so a queue that drains and refills in bursts does not
//! make pods come and go.

use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scaling {
    pub min: i32,
    pub max: i32,
    pub target_per_replica: u32,
    pub scale_down_delay: Duration,
}

impl Default for Scaling {
    fn default() -> Self {
        Scaling {
            min: 0,
            max: 20,
            target_per_replica: 16,
            scale_down_delay: Duration::from_secs(60),
        }
    }
}

/// The queue of one pool, as the engine counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    pub queued: u64,
    pub running: u64,
    /// Delayed tasks whose time has come.
    pub due: u64,
}

impl Demand {
    pub fn total(&self) -> u64 {
        self.queued
            .saturating_add(self.running)
            .saturating_add(self.due)
    }
}

/// What the scaler remembers per pool between decisions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScaleMemory {
    /// The replicas last decided (None: never decided).
    pub desired: Option<i32>,
    /// When the demand last asked for at least `desired` (ms since epoch).
    pub high_at_ms: u64,
    /// When `desired` last changed (ms since epoch).
    pub changed_at_ms: u64,
}

/// Replicas the demand asks for, before the delay on the way down.
pub fn wanted(demand: Demand, s: &Scaling) -> i32 {
    let per = u64::from(s.target_per_replica.max(1));
    let raw = demand.total().div_ceil(per);
    let raw = i32::try_from(raw).unwrap_or(i32::MAX);
    let (min, max) = (s.min.max(0), s.max.max(s.min.max(0)));
    raw.clamp(min, max)
}

/// The next decision: replicas to set, and the memory to keep.
pub fn decide(memory: ScaleMemory, demand: Demand, s: &Scaling, now_ms: u64) -> ScaleMemory {
    let want = wanted(demand, s);
    let Some(current) = memory.desired else {
        return ScaleMemory {
            desired: Some(want),
            high_at_ms: now_ms,
            changed_at_ms: now_ms,
        };
    };
    if want >= current {
        return ScaleMemory {
            desired: Some(want),
            high_at_ms: now_ms,
            changed_at_ms: if want > current {
                now_ms
            } else {
                memory.changed_at_ms
            },
        };
    }
    let quiet_ms = now_ms.saturating_sub(memory.high_at_ms);
    if quiet_ms >= s.scale_down_delay.as_millis() as u64 {
        ScaleMemory {
            desired: Some(want),
            high_at_ms: now_ms,
            changed_at_ms: now_ms,
        }
    } else {
        memory
    }
}

/// When the memory will allow a scale-down that the demand already asks
/// for (ms since epoch), so the controller can look again then.
pub fn next_look_ms(memory: ScaleMemory, demand: Demand, s: &Scaling) -> Option<u64> {
    let current = memory.desired?;
    (wanted(demand, s) < current).then(|| {
        memory
            .high_at_ms
            .saturating_add(s.scale_down_delay.as_millis() as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaling() -> Scaling {
        Scaling {
            min: 0,
            max: 5,
            target_per_replica: 100,
            scale_down_delay: Duration::from_secs(10),
        }
    }

    fn demand(queued: u64) -> Demand {
        Demand {
            queued,
            running: 0,
            due: 0,
        }
    }

    #[test]
    fn desired_is_ceil_of_demand_over_target_clamped() {
        let s = scaling();
        assert_eq!(wanted(demand(0), &s), 0);
        assert_eq!(wanted(demand(1), &s), 1);
        assert_eq!(wanted(demand(100), &s), 1);
        assert_eq!(wanted(demand(101), &s), 2);
        assert_eq!(wanted(demand(2_000), &s), 5);
        let d = Demand {
            queued: 50,
            running: 40,
            due: 20,
        };
        assert_eq!(wanted(d, &s), 2, "queued + running + due");
        let floor = Scaling { min: 2, ..s };
        assert_eq!(wanted(demand(0), &floor), 2);
        assert_eq!(
            wanted(demand(u64::MAX), &Scaling { max: i32::MAX, ..s }),
            i32::MAX
        );
    }

    #[test]
    fn up_at_once_from_zero() {
        let s = scaling();
        let m = decide(ScaleMemory::default(), demand(0), &s, 0);
        assert_eq!(m.desired, Some(0));
        let m = decide(m, demand(2_000), &s, 1);
        assert_eq!(m.desired, Some(5));
        assert_eq!(m.changed_at_ms, 1);
    }

    #[test]
    fn down_only_after_the_delay_without_growth_and_then_to_zero() {
        let s = scaling();
        let mut m = decide(ScaleMemory::default(), demand(500), &s, 0);
        assert_eq!(m.desired, Some(5));
        m = decide(m, demand(150), &s, 5_000);
        assert_eq!(m.desired, Some(5), "within the delay");
        assert_eq!(next_look_ms(m, demand(150), &s), Some(10_000));
        m = decide(m, demand(150), &s, 10_000);
        assert_eq!(m.desired, Some(2));
        m = decide(m, demand(0), &s, 15_000);
        assert_eq!(m.desired, Some(2));
        m = decide(m, demand(0), &s, 20_000);
        assert_eq!(m.desired, Some(0));
        assert_eq!(next_look_ms(m, demand(0), &s), None);
    }

    #[test]
    fn growth_restarts_the_delay() {
        let s = scaling();
        let mut m = decide(ScaleMemory::default(), demand(300), &s, 0);
        m = decide(m, demand(100), &s, 8_000);
        m = decide(m, demand(300), &s, 9_000); // back to what 3 replicas carry
        m = decide(m, demand(100), &s, 12_000);
        assert_eq!(
            m.desired,
            Some(3),
            "the delay counts from the last time demand was high"
        );
        m = decide(m, demand(100), &s, 19_000);
        assert_eq!(m.desired, Some(1));
    }
}
