//! How many worker replicas a pool should have. Pure: the scaler's memory
//! ([`ScaleMemory`]) goes in and comes out, time is an argument.
//!
//! wanted = clamp(ceil((queued tasks + running + due delayed) /
//! targetPerReplica), min, max), where the queued tasks count what the
//! queued nodes will become (a map range not yet split as its leaves).
//!
//! Up at once; down as the Horizontal Pod Autoscaler's stabilization
//! window does it: to the highest value `wanted` took during the last
//! `scaleDownDelay`. The demand is a step function of time (it holds its
//! value between two decisions), so a demand that stayed high for an hour
//! without an event still counts as high until the moment it fell, and the
//! delay counts from then.

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

impl Scaling {
    fn delay_ms(&self) -> u64 {
        u64::try_from(self.scale_down_delay.as_millis()).unwrap_or(u64::MAX)
    }

    fn bounds(&self) -> (i32, i32) {
        let min = self.min.max(0);
        (min, self.max.max(min))
    }
}

/// The work of one pool, as the engine counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Demand {
    /// Tasks the ready queue will become (a map range not yet split counts
    /// its leaves, a parallel its calls).
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

/// From `since_ms` on (until the next step), the demand asked for at most
/// `replicas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub since_ms: u64,
    pub replicas: i32,
}

/// What the scaler remembers per pool: the steps of the demand inside the
/// window, each lower than the one before. A step that a later, higher one
/// follows can never be the highest of a window again (every window that
/// holds part of it also holds the later one's start), so it is merged
/// into that one; the steps are therefore at most max - min + 1.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaleMemory {
    steps: Vec<Step>,
}

impl ScaleMemory {
    /// The memory of a process that has just started leading while the
    /// pool had `applied` replicas: as far as it knows, the demand asked
    /// for them until now, so the window starts again (as the HPA's does
    /// after a restart) and nothing goes down before a whole delay.
    pub fn resumed(applied: i32, now_ms: u64) -> ScaleMemory {
        ScaleMemory {
            steps: vec![Step {
                since_ms: now_ms,
                replicas: applied,
            }],
        }
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }
}

/// What to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub replicas: i32,
    /// What the demand asks for now (below `replicas` while the window
    /// holds them up).
    pub wanted: i32,
    /// When the highest step leaves the window, so the replicas may go
    /// down: the controller looks again then (ms since epoch).
    pub wake_at_ms: Option<u64>,
}

/// Replicas the demand asks for, before the window on the way down.
pub fn wanted(demand: Demand, s: &Scaling) -> i32 {
    let per = u64::from(s.target_per_replica.max(1));
    let raw = demand.total().div_ceil(per);
    let raw = i32::try_from(raw).unwrap_or(i32::MAX);
    let (min, max) = s.bounds();
    raw.clamp(min, max)
}

/// The next decision, and the memory to keep.
pub fn decide(
    memory: ScaleMemory,
    demand: Demand,
    s: &Scaling,
    now_ms: u64,
) -> (ScaleMemory, Decision) {
    let want = wanted(demand, s);
    let mut steps = memory.steps;
    // A clock that went back: the steps ahead of it hold from now.
    for step in &mut steps {
        step.since_ms = step.since_ms.min(now_ms);
    }
    let mut since = now_ms;
    while let Some(last) = steps.last().copied().filter(|l| l.replicas <= want) {
        since = last.since_ms;
        steps.pop();
    }
    steps.push(Step {
        since_ms: since,
        replicas: want,
    });
    // A step leaves the window once the next one began a whole delay ago.
    let delay = s.delay_ms();
    let gone = steps
        .windows(2)
        .take_while(|w| w[1].since_ms.saturating_add(delay) <= now_ms)
        .count();
    steps.drain(..gone);
    let (min, max) = s.bounds();
    let replicas = steps.first().map_or(want, |f| f.replicas).clamp(min, max);
    let wake_at_ms = steps
        .get(1)
        .filter(|_| replicas > want)
        .map(|next| next.since_ms.saturating_add(delay));
    (
        ScaleMemory { steps },
        Decision {
            replicas,
            wanted: want,
            wake_at_ms,
        },
    )
}

#[cfg(test)]
mod tests;
