//! The scaler on its own: every decision gets its time, so the window is
//! checked to the millisecond without a clock.

use super::*;

const DELAY: u64 = 10_000;

fn scaling() -> Scaling {
    Scaling {
        min: 0,
        max: 5,
        target_per_replica: 100,
        scale_down_delay: Duration::from_millis(DELAY),
    }
}

fn demand(queued: u64) -> Demand {
    Demand {
        queued,
        running: 0,
        due: 0,
    }
}

/// Decisions in order from an empty memory: (time, queued) each.
fn run(memory: ScaleMemory, at: &[(u64, u64)]) -> (ScaleMemory, Decision) {
    let s = scaling();
    let mut m = memory;
    let mut last = None;
    for &(t, q) in at {
        let (next, d) = decide(m, demand(q), &s, t);
        m = next;
        last = Some(d);
    }
    (m, last.expect("at least one decision"))
}

#[test]
fn wanted_is_ceil_of_demand_over_target_clamped() {
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

/// Item 1 as the scaler sees it: a map of 100,000 items in shards of
/// 1,000 is one queued node but 100 queued tasks; from 0 the pool goes to
/// what they ask for in one decision.
#[test]
fn the_leaves_of_an_unsplit_map_scale_up_in_one_decision() {
    let (_, d) = run(ScaleMemory::default(), &[(0, 0)]);
    assert_eq!(d.replicas, 0);
    let (m, d) = run(ScaleMemory::default(), &[(0, 0), (1, 100_000 / 1_000 * 5)]);
    assert_eq!((d.replicas, d.wake_at_ms), (5, None));
    assert_eq!(m.steps().len(), 1);
}

/// Item 2: the delay counts from when the demand fell, however long it
/// stayed high without a decision before.
#[test]
fn high_and_quiet_for_longer_than_the_delay_still_waits_a_whole_delay() {
    let (m, d) = run(ScaleMemory::default(), &[(0, 500), (20_000, 0)]);
    assert_eq!(d.replicas, 5, "the demand fell just now");
    assert_eq!(d.wanted, 0);
    assert_eq!(
        d.wake_at_ms,
        Some(20_000 + DELAY),
        "the timer: when it may go"
    );
    let (m2, d) = decide(m.clone(), demand(0), &scaling(), 20_000 + DELAY - 1);
    assert_eq!(d.replicas, 5, "a millisecond early");
    assert_eq!(m2, m, "an early look changes nothing");
    let (m, d) = decide(m, demand(0), &scaling(), 20_000 + DELAY);
    assert_eq!((d.replicas, d.wake_at_ms), (0, None));
    assert_eq!(m.steps().len(), 1);
}

#[test]
fn down_to_the_highest_demand_of_the_last_delay_step_by_step() {
    let (m, d) = run(
        ScaleMemory::default(),
        &[(0, 500), (20_000, 150), (25_000, 0)],
    );
    assert_eq!((d.replicas, d.wake_at_ms), (5, Some(30_000)));
    let (m, d) = decide(m, demand(0), &scaling(), 30_000);
    assert_eq!(d.replicas, 2, "the 150 of 25 s ago is inside the window");
    assert_eq!(d.wake_at_ms, Some(35_000));
    let (_, d) = decide(m, demand(0), &scaling(), 35_000);
    assert_eq!((d.replicas, d.wake_at_ms), (0, None));
}

#[test]
fn a_burst_inside_the_window_holds_the_replicas_from_its_end() {
    let (m, d) = run(
        ScaleMemory::default(),
        &[(0, 500), (20_000, 0), (25_000, 500), (27_000, 0)],
    );
    assert_eq!((d.replicas, d.wake_at_ms), (5, Some(37_000)));
    let (_, d) = decide(m, demand(0), &scaling(), 36_999);
    assert_eq!(d.replicas, 5);
}

#[test]
fn up_at_once_and_a_delay_of_zero_goes_down_at_once() {
    let (_, d) = run(ScaleMemory::default(), &[(0, 100), (5, 2_000)]);
    assert_eq!((d.replicas, d.wake_at_ms), (5, None));
    let s = Scaling {
        scale_down_delay: Duration::ZERO,
        ..scaling()
    };
    let (m, _) = decide(ScaleMemory::default(), demand(500), &s, 0);
    let (_, d) = decide(m, demand(0), &s, 1);
    assert_eq!((d.replicas, d.wake_at_ms), (0, None));
}

#[test]
fn a_lower_max_or_a_higher_min_applies_at_once() {
    let (m, _) = run(ScaleMemory::default(), &[(0, 500), (1, 0)]);
    let lower = Scaling {
        max: 2,
        ..scaling()
    };
    let (_, d) = decide(m.clone(), demand(0), &lower, 2);
    assert_eq!(d.replicas, 2, "the window never holds more than max");
    let higher = Scaling {
        min: 3,
        ..scaling()
    };
    let (_, d) = decide(m, demand(0), &higher, 20_000);
    assert_eq!((d.replicas, d.wake_at_ms), (3, None));
}

/// The window's answer checked against the definition (the highest value
/// the demand asked for in [now - delay, now], the demand holding its
/// value between decisions) over a long pseudo-random run, and the memory
/// stays within max - min + 1 steps.
#[test]
fn the_window_matches_its_definition_on_a_random_run() {
    let s = scaling();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut history: Vec<(u64, i32)> = Vec::new();
    let mut m = ScaleMemory::default();
    let mut t = 0;
    for _ in 0..5_000 {
        t += next() % 4_000;
        let q = next() % 600;
        let (n, d) = decide(m, demand(q), &s, t);
        m = n;
        history.push((t, wanted(demand(q), &s)));
        let expected = history
            .iter()
            .enumerate()
            .filter(|(i, _)| history.get(i + 1).is_none_or(|next| next.0 + DELAY > t))
            .map(|(_, h)| h.1)
            .max()
            .unwrap_or(0);
        assert_eq!(d.replicas, expected, "at {t} ms");
        assert!(m.steps().len() <= 6, "{:?}", m.steps());
        if let Some(at) = d.wake_at_ms {
            assert!(at > t && at <= t + DELAY, "wake at {at}, now {t}");
        }
    }
}

/// Item 3: an operator that starts leading resumes from the replicas last
/// applied, and nothing goes down before a whole delay after it started,
/// whether the demand fell before the restart or after it.
#[test]
fn after_a_restart_nothing_goes_down_before_a_whole_delay() {
    // The demand fell before the restart (at 20 s; the old process held 5
    // until it died at 22 s); the new one starts at 23 s.
    let (_, d) = run(ScaleMemory::resumed(5, 23_000), &[(23_000, 0)]);
    assert_eq!((d.replicas, d.wake_at_ms), (5, Some(23_000 + DELAY)));
    let (m, _) = run(ScaleMemory::resumed(5, 23_000), &[(23_000, 0)]);
    let (_, d) = decide(m.clone(), demand(0), &scaling(), 23_000 + DELAY - 1);
    assert_eq!(d.replicas, 5);
    let (_, d) = decide(m, demand(0), &scaling(), 23_000 + DELAY);
    assert_eq!(d.replicas, 0);
    // The demand falls after the restart: the delay counts from the fall.
    let (_, d) = run(
        ScaleMemory::resumed(5, 23_000),
        &[(23_000, 500), (40_000, 0), (49_999, 0)],
    );
    assert_eq!((d.replicas, d.wake_at_ms), (5, Some(50_000)));
    // A pool that grew while the operator was away grows at once.
    let (_, d) = run(ScaleMemory::resumed(2, 23_000), &[(23_000, 500)]);
    assert_eq!(d.replicas, 5);
    // Without the memory (today's first decision) it would go at once.
    let (_, d) = run(ScaleMemory::default(), &[(23_000, 0)]);
    assert_eq!(d.replicas, 0);
}
