//! The engine's change feed turned into work for the operator: the objects
//! it names go to the status writer, the pools to the WorkerPool
//! controllers. Nothing polls: a status patch or a scaling decision follows
//! a change in the engine, and an idle engine costs nothing.

use crate::bridge::JobKey;
use crate::job::JobKind;
use crate::status::StatusHandle;
use kontinuum_api::{ObjectId, ObjectKind, WorkerPool};
use kontinuum_engine::Engine;
use kube::runtime::reflector::ObjectRef;
use std::time::Duration;
use tokio::sync::broadcast;

/// Pool changes are fanned out to every WorkerPool controller (one per
/// watched namespace), each with this many changes of room.
const POOL_BACKLOG: usize = 4096;

/// Where the engine's changes go.
pub struct Sinks {
    pub status: StatusHandle,
    pub pools: broadcast::Sender<ObjectRef<WorkerPool>>,
}

pub fn pool_channel() -> broadcast::Sender<ObjectRef<WorkerPool>> {
    broadcast::channel(POOL_BACKLOG).0
}

/// Starts the pump on its own thread (the feed blocks). It subscribes
/// before it returns, so no change made after this call is missed; it ends
/// when the status writer is gone.
pub fn start(engine: &Engine, sinks: Sinks) {
    let feed = engine.subscribe();
    let spawned = std::thread::Builder::new()
        .name("engine-feed".into())
        .spawn(move || {
            loop {
                let changes = feed.wait(Duration::from_secs(1));
                for (namespace, pool) in &changes.pools {
                    // No receiver yet (controllers starting) is not an error:
                    // their first reconcile reads the figures anyway.
                    let _ = sinks.pools.send(ObjectRef::new(pool).within(namespace));
                }
                let keys: Vec<JobKey> = changes.objects.iter().map(job_key).collect();
                if keys.is_empty() {
                    if sinks.status.is_closed() {
                        return;
                    }
                    continue;
                }
                // Blocks while the writer is behind; the feed coalesces
                // meanwhile, so nothing is lost and memory stays bounded.
                if !sinks.status.blocking_send_changed(keys) {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the engine feed thread: {e}");
    }
}

fn job_key(id: &ObjectId) -> JobKey {
    JobKey {
        namespace: id.namespace.clone(),
        kind: match id.kind {
            ObjectKind::Task => JobKind::Task,
            ObjectKind::Future => JobKind::Future,
        },
        name: id.name.clone(),
    }
}

/// The reconcile triggers of one WorkerPool controller: every pool the
/// engine reports changed. Changes lost by lagging behind are caught by
/// the pool reconcile's one-minute backstop requeue.
pub fn pool_triggers(
    pools: &broadcast::Sender<ObjectRef<WorkerPool>>,
) -> impl futures::Stream<Item = ObjectRef<WorkerPool>> + Send + 'static {
    let rx = pools.subscribe();
    futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(pool) => return Some((pool, rx)),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "pool changes came faster than they were read");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}
