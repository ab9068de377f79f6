//! Sends completions to the engine in batches: a batch goes when it is full
//! or when its first completion has waited `flush_after`. The engine commits
//! a batch at once, so batching is what makes thousands of tasks/s cheap.
//! A few batches travel at once: each waits for an fsync, and one at a time
//! would cap a worker at `max_batch` completions per fsync.

use crate::source::WorkSource;
use kontinuum_api::work::{Completion, CompletionAck};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;

/// Completion batches on their way at once.
pub(crate) const IN_FLIGHT: usize = 4;

pub(crate) enum Report {
    /// An outcome, with the task's credit (see `Shared::credits` in
    /// runtime.rs), given back once the batch carrying it is answered.
    Done(Completion, Option<OwnedSemaphorePermit>),
    /// Flush what came before, then end (sent once at shutdown).
    Stop,
}

pub(crate) async fn flush_loop<S: WorkSource>(
    source: Arc<S>,
    mut rx: mpsc::UnboundedReceiver<Report>,
    max_batch: usize,
    flush_after: Duration,
) {
    let mut batch: Vec<Completion> = Vec::with_capacity(max_batch);
    let mut credits: Vec<OwnedSemaphorePermit> = Vec::with_capacity(max_batch);
    let mut stopping = false;
    let mut sending = JoinSet::new();
    while !stopping {
        match rx.recv().await {
            Some(Report::Done(c, credit)) => {
                batch.push(c);
                credits.extend(credit);
            }
            Some(Report::Stop) | None => break,
        }
        let deadline = tokio::time::sleep(flush_after);
        tokio::pin!(deadline);
        while batch.len() < max_batch {
            // Take what is already queued without touching the timer.
            match rx.try_recv() {
                Ok(Report::Done(c, credit)) => {
                    batch.push(c);
                    credits.extend(credit);
                    continue;
                }
                Ok(Report::Stop) => {
                    stopping = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    stopping = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            tokio::select! {
                report = rx.recv() => match report {
                    Some(Report::Done(c, credit)) => { batch.push(c); credits.extend(credit); }
                    Some(Report::Stop) | None => { stopping = true; break; }
                },
                () = &mut deadline => break,
            }
        }
        while sending.len() >= IN_FLIGHT {
            sending.join_next().await;
        }
        let full = std::mem::replace(&mut batch, Vec::with_capacity(max_batch));
        let held = std::mem::replace(&mut credits, Vec::with_capacity(max_batch));
        let source = source.clone();
        sending.spawn(async move {
            send(&*source, full).await;
            drop(held);
        });
    }
    if !batch.is_empty() {
        send(&*source, batch).await;
    }
    drop(credits);
    while sending.join_next().await.is_some() {}
}

/// Sends once: a transport that can usefully retry (HTTP) does so inside
/// `complete`. A lost batch is delayed work, never lost work: the leases
/// expire and the engine runs the tasks again.
async fn send<S: WorkSource>(source: &S, batch: Vec<Completion>) {
    let count = batch.len();
    match source.complete(batch).await {
        Ok(acks) => {
            let stale = acks.iter().filter(|a| **a == CompletionAck::Stale).count();
            if stale > 0 {
                tracing::debug!(stale, of = count, "completions ignored as stale");
            }
        }
        Err(e) => {
            tracing::error!(error = %e, count, "completions not delivered; their tasks will run again")
        }
    }
}
