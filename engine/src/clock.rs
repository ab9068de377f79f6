//! Where the engine gets its time. The wall clock by default; tests give the
//! engine a [`ManualClock`] and move it themselves, so retries, delays,
//! debounce, leases, timeouts and deadlines are tested without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The engine's source of time, in milliseconds since the Unix epoch.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system's clock; a ticker thread runs the timers every 10 ms.
    #[default]
    Wall,
    /// Time moves only when the test moves it. There is no ticker: after
    /// moving the clock, call [`crate::Engine::tick`] to run the timers.
    Manual(ManualClock),
}

impl Clock {
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::Wall => wall_ms(),
            Clock::Manual(m) => m.now_ms(),
        }
    }

    pub fn is_manual(&self) -> bool {
        matches!(self, Clock::Manual(_))
    }
}

impl From<ManualClock> for Clock {
    fn from(clock: ManualClock) -> Clock {
        Clock::Manual(clock)
    }
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A clock that stands still until moved. Clones share the same time, so a
/// test keeps one and hands another to the engine.
#[derive(Clone, Debug)]
pub struct ManualClock {
    ms: Arc<AtomicU64>,
}

impl ManualClock {
    /// Starts at `ms` since the epoch.
    pub fn at(ms: u64) -> ManualClock {
        ManualClock {
            ms: Arc::new(AtomicU64::new(ms)),
        }
    }

    /// Starts at the wall clock's present, so that times shown in statuses
    /// (startedAt, notBefore) look like real ones.
    pub fn starting_now() -> ManualClock {
        ManualClock::at(wall_ms())
    }

    pub fn now_ms(&self) -> u64 {
        self.ms.load(Ordering::SeqCst)
    }

    pub fn advance(&self, by: Duration) {
        self.ms.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::at(1_000);
        let engine_side: Clock = clock.clone().into();
        assert_eq!(engine_side.now_ms(), 1_000);
        clock.advance(Duration::from_millis(250));
        assert_eq!(engine_side.now_ms(), 1_250);
        assert!(engine_side.is_manual());
    }

    #[test]
    fn the_wall_clock_is_the_default_and_is_recent() {
        let clock = Clock::default();
        assert!(!clock.is_manual());
        // 2020-01-01 or later.
        assert!(clock.now_ms() > 1_577_836_800_000);
    }
}
