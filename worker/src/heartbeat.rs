//! One loop heartbeats every task that has run longer than its interval
//! (lease_ms / 3), carrying progress, and acts on the replies: cancel, lost
//! lease, or a request to split a map leaf.

use crate::error::{FnError, SourceError};
use crate::shared::Shared;
use crate::source::WorkSource;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest sleep between scans. A task whose interval is shorter than this
/// wakes the loop when it starts (see `Shared::beat_wake`).
pub(crate) const MAX_TICK: Duration = Duration::from_millis(100);

pub(crate) async fn heartbeat_loop<S: WorkSource>(shared: Arc<Shared<S>>) {
    // Runs until shutdown aborts it, after the last task has ended.
    loop {
        let now = Instant::now();
        let mut next = now + MAX_TICK;
        let due: Vec<_> = {
            let mut running = shared.running.lock();
            running
                .iter_mut()
                .filter_map(|(token, r)| {
                    let at = r.last_beat + r.beat_every;
                    if at <= now {
                        r.last_beat = now;
                        next = next.min(now + r.beat_every);
                        Some((*token, r.ctx.clone()))
                    } else {
                        next = next.min(at);
                        None
                    }
                })
                .collect()
        };
        for (token, ctx) in due {
            match shared
                .source
                .heartbeat(token, ctx.reported_progress())
                .await
            {
                Ok(reply) if reply.lost => {
                    tracing::info!(token, "lease lost; stopping the task");
                    let _ = shared.end_running(token, None);
                }
                Ok(reply) if reply.cancelled => {
                    tracing::debug!(token, "task cancelled");
                    let _ = shared.end_running(token, Some(FnError::permanent("cancelled")));
                }
                Ok(reply) => {
                    if reply.split {
                        ctx.request_split();
                    }
                }
                Err(SourceError::StaleLease) => {
                    let _ = shared.end_running(token, None);
                }
                // Keep going: the next beat may get through before the lease ends.
                Err(e) => tracing::warn!(token, error = %e, "heartbeat failed"),
            }
        }
        let wake = next.max(Instant::now() + Duration::from_millis(1));
        tokio::select! {
            () = tokio::time::sleep_until(wake.into()) => {}
            () = shared.beat_wake.notified() => {}
        }
    }
}
