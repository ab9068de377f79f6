//! Looking at a WorkerPool's Deployment from a test.

use std::time::{Duration, Instant};

/// The Deployment's spec.replicas, if it exists.
pub fn deployment_replicas(ns: &str, pool: &str) -> Option<i64> {
    let out = crate::kubectl_result(
        &[
            "get",
            "deployment",
            &format!("{pool}-workers"),
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.replicas}",
        ],
        None,
    );
    out.success
        .then(|| out.stdout.trim().parse().ok())
        .flatten()
}

/// Polls `check` every 50 ms until it holds; fails after `timeout`.
/// Returns how long it took.
pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(start.elapsed() < timeout, "{what}: not after {timeout:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
