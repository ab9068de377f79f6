//! How long a failed reconcile waits before its object is tried again.
//!
//! Per object, doubling from [`FIRST`] up to [`CAP`] with each failure in a
//! row, and back to the start after a success: one object that keeps
//! failing (an API server that refuses it, a store that is full) is tried
//! less and less often and never holds up the others, while a passing
//! hiccup costs a second. An error that no retry can cure (the object
//! itself is malformed) is not retried at all: the object waits for a
//! change, which reconciles it anyway.

use crate::error::Error;
use crate::metrics::Metrics;
use kube::runtime::controller::Action;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

pub const FIRST: Duration = Duration::from_secs(1);
pub const CAP: Duration = Duration::from_secs(300);
/// Objects remembered at most; past it the memory starts afresh (an
/// object deleted while failing is never told to succeed).
const REMEMBERED: usize = 100_000;

/// The wait after `failures` failures in a row (1 = the first).
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(31);
    FIRST.saturating_mul(1u32 << doublings).min(CAP)
}

/// Whether trying again can help: not for an object that is malformed, or
/// that the API server refuses as invalid (400, 422), until it changes.
pub fn retries(error: &Error) -> bool {
    match error {
        Error::Invalid(_) => false,
        Error::Kube {
            source: kube::Error::Api(s),
            ..
        } => !matches!(s.code, 400 | 422),
        _ => true,
    }
}

/// Failures in a row, per object.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// Counts a failure of `object`; the wait before its next try.
    pub fn failed(&self, object: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() >= REMEMBERED && !failures.contains_key(object) {
            failures.clear();
        }
        let n = failures.entry(object.to_string()).or_default();
        *n = n.saturating_add(1);
        delay(*n)
    }

    /// `object` reconciled: its next failure waits [`FIRST`] again.
    pub fn succeeded(&self, object: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(object);
    }

    /// Runs one reconcile of `object` by `controller`: in a span naming
    /// the object, timed, and a success starts its backoff over.
    pub async fn reconcile<T>(
        &self,
        metrics: &Metrics,
        controller: &str,
        object: &str,
        reconcile: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        use tracing::Instrument;
        let span = tracing::info_span!("reconcile", object = %object);
        let result = metrics.timed(controller, reconcile).instrument(span).await;
        if result.is_ok() {
            self.succeeded(object);
        }
        result
    }

    /// After a failed reconcile of `object`: counted, logged, and tried
    /// again after its backoff, or not until it changes when no retry can
    /// help.
    pub fn after_failure(
        &self,
        metrics: &Metrics,
        controller: &str,
        object: &str,
        error: &Error,
    ) -> Action {
        metrics
            .reconcile_errors
            .with_label_values(&[controller, error.reason()])
            .inc();
        if !retries(error) {
            tracing::warn!(%object, "reconcile failed; not retried until it changes: {error}");
            return Action::await_change();
        }
        let wait = self.failed(object);
        tracing::warn!(%object, retry_in = ?wait, "reconcile failed: {error}");
        Action::requeue(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_a_second_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=11).map(|n| delay(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(delay(u32::MAX), CAP);
        assert_eq!(delay(0), FIRST);
    }

    #[test]
    fn counts_per_object_and_starts_over_after_a_success() {
        let b = Backoff::default();
        assert_eq!(b.failed("a"), Duration::from_secs(1));
        assert_eq!(b.failed("a"), Duration::from_secs(2));
        assert_eq!(b.failed("b"), Duration::from_secs(1));
        assert_eq!(b.failed("a"), Duration::from_secs(4));
        b.succeeded("a");
        assert_eq!(b.failed("a"), Duration::from_secs(1));
        assert_eq!(b.failed("b"), Duration::from_secs(2));
    }

    fn api(code: u16) -> Error {
        Error::Kube {
            doing: "patch",
            source: kube::Error::Api(Box::new(
                kube::core::Status::failure("no", "Reason").with_code(code),
            )),
        }
    }

    #[test]
    fn a_malformed_object_is_not_retried_a_failing_server_is() {
        assert!(!retries(&Error::Invalid("no uid".into())));
        assert!(!retries(&api(422)));
        assert!(!retries(&api(400)));
        for code in [403, 404, 409, 429, 500, 503] {
            assert!(retries(&api(code)), "{code}");
        }
        assert!(retries(&Error::StoreFailed("full".into())));
    }
}
