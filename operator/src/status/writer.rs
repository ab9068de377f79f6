//! The status writer's loop: messages from reconcilers and engine changes
//! in, server-side-apply patches and Events out.

use super::events::{self, EventSpec};
use super::index::{Entry, Index};
use super::model::JobStatus;
use super::render::{self, Note};
use super::unserved;
use crate::bridge::{Bridge, JobKey};
use crate::job::JobKind;
use crate::metrics::Metrics;
use futures::StreamExt;
use k8s_openapi::api::core::v1::ObjectReference;
use kontinuum_engine::EngineError;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Api, Client};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub const FIELD_MANAGER: &str = "kontinuum-operator";

/// Patches in flight at once. A new one starts as soon as one returns, so
/// a slow patch delays only its own object.
const PARALLEL_PATCHES: usize = 32;

#[derive(Debug)]
pub enum StatusMsg {
    /// A reconciler saw the resource.
    Observe {
        key: JobKey,
        uid: String,
        generation: Option<i64>,
        current: Option<JobStatus>,
    },
    /// Why the engine does not hold it (None: it does now).
    Note { key: JobKey, note: Option<Note> },
    /// Whether nothing serves its pool (None: something does).
    Serving {
        key: JobKey,
        unserved: Option<unserved::Unserved>,
    },
    /// The resource is gone.
    Forget { key: JobKey },
    /// The engine changed these objects.
    Changed { keys: Vec<JobKey> },
    /// The engine's store failed (the reason): statuses that are not final
    /// say so, as the engine cannot tell them anything any more.
    EngineStopped { reason: String },
}

/// The reconcilers' end of the writer's channel.
#[derive(Clone)]
pub struct StatusHandle {
    tx: mpsc::Sender<StatusMsg>,
}

impl StatusHandle {
    pub async fn send(&self, msg: StatusMsg) {
        // The writer only stops when the process does.
        let _ = self.tx.send(msg).await;
    }

    /// Hands over engine changes from a plain thread, waiting while the
    /// channel is full; false once the writer is gone.
    pub fn blocking_send_changed(&self, keys: Vec<JobKey>) -> bool {
        self.tx.blocking_send(StatusMsg::Changed { keys }).is_ok()
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// A handle whose messages the test reads instead of a writer.
    #[cfg(test)]
    pub fn channel(capacity: usize) -> (StatusHandle, mpsc::Receiver<StatusMsg>) {
        let (tx, rx) = mpsc::channel(capacity);
        (StatusHandle { tx }, rx)
    }
}

pub struct Writer {
    patcher: Patcher,
    index: Index<JobKey>,
    rx: mpsc::Receiver<StatusMsg>,
    events: mpsc::Sender<(ObjectReference, EventSpec)>,
    metrics: Arc<Metrics>,
}

/// What one patch needs, cloned into each patch's future so that the
/// writer's index stays free to change while patches are on their way.
#[derive(Clone)]
struct Patcher {
    client: Client,
    bridge: Bridge,
    metrics: Arc<Metrics>,
    interval: Duration,
    /// Why the engine stopped, once it has.
    stopped: Option<String>,
}

enum Outcome {
    Wrote {
        key: JobKey,
        uid: String,
        status: JobStatus,
        events: Vec<EventSpec>,
    },
    Unchanged {
        key: JobKey,
    },
    /// A first status that is not final: written later (see index.rs).
    Held {
        key: JobKey,
        until: Instant,
    },
    Gone {
        key: JobKey,
    },
    Failed {
        key: JobKey,
    },
}

impl Writer {
    pub fn new(
        client: Client,
        bridge: Bridge,
        interval: Duration,
        metrics: Arc<Metrics>,
        reporter: Reporter,
    ) -> (Writer, StatusHandle) {
        let (tx, rx) = mpsc::channel(4096);
        let (events_tx, events_rx) = mpsc::channel(4096);
        tokio::spawn(publish_events(
            Recorder::new(client.clone(), reporter),
            events_rx,
            metrics.clone(),
        ));
        let writer = Writer {
            patcher: Patcher {
                client,
                bridge,
                metrics: metrics.clone(),
                interval,
                stopped: None,
            },
            index: Index::new(interval),
            rx,
            events: events_tx,
            metrics,
        };
        (writer, StatusHandle { tx })
    }

    fn apply(&mut self, msg: StatusMsg) {
        match msg {
            StatusMsg::Observe {
                key,
                uid,
                generation,
                current,
            } => self
                .index
                .observe(key, &uid, generation, current, Instant::now()),
            StatusMsg::Note { key, note } => self.index.set_note(&key, note),
            StatusMsg::Serving { key, unserved } => self.index.set_unserved(&key, unserved),
            StatusMsg::Forget { key } => self.index.forget(&key),
            StatusMsg::Changed { keys } => keys.iter().for_each(|k| self.index.changed(k)),
            StatusMsg::EngineStopped { reason } => {
                if self.patcher.stopped.is_none() {
                    self.patcher.stopped = Some(reason);
                    self.index.mark_unfinished();
                }
            }
        }
    }

    pub async fn run(mut self) {
        let mut patches = futures::stream::FuturesUnordered::new();
        loop {
            let now = Instant::now();
            for key in self.index.due(now, PARALLEL_PATCHES - patches.len()) {
                if let Some(entry) = self.index.take(&key) {
                    patches.push(self.patcher.clone().render_and_patch(key, entry));
                }
            }
            let wake = self
                .index
                .next_due(now)
                .unwrap_or(now + Duration::from_secs(3600));
            tokio::select! {
                msg = self.rx.recv() => match msg {
                    Some(msg) => self.apply(msg),
                    None => return,
                },
                Some(outcome) = patches.next(), if !patches.is_empty() => {
                    self.finish(outcome);
                }
                _ = tokio::time::sleep_until(wake.into()) => {}
            }
            while let Ok(msg) = self.rx.try_recv() {
                self.apply(msg);
            }
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        let now = Instant::now();
        match outcome {
            Outcome::Wrote {
                key,
                uid,
                status,
                events,
            } => {
                let reference = object_reference(&key, &uid);
                for e in events {
                    if self.events.try_send((reference.clone(), e)).is_err() {
                        self.metrics.events_dropped.inc();
                    }
                }
                self.index.wrote(&key, &uid, status, now);
            }
            Outcome::Unchanged { key } => self.index.unchanged(&key),
            Outcome::Held { key, until } => self.index.hold(&key, until),
            Outcome::Gone { key } => self.index.forget(&key),
            Outcome::Failed { key } => self.index.failed(&key, now),
        }
    }
}

impl Patcher {
    async fn render_and_patch(self, key: JobKey, entry: Entry) -> Outcome {
        let store_id = self.bridge.store_id().to_string();
        let engine_status = match &self.stopped {
            Some(reason) => Err(reason.clone()),
            None => match self.bridge.status(&key).await {
                Ok(s) => Ok(s),
                Err(crate::error::Error::Engine(EngineError::StoreFailed(reason))) => Err(reason),
                Err(e) => {
                    tracing::warn!(object = %key, "reading the engine status: {e}");
                    return Outcome::Failed { key };
                }
            },
        };
        // What the engine holds wins: a note (waiting for a parent, say) is
        // stale once the object is in the engine, by whichever reconcile
        // put it there (a parent's submission takes its children along).
        let mut events = Vec::new();
        let status = match engine_status {
            Ok(Some(s)) => {
                let mut status = render::from_engine(s, entry.generation, &store_id);
                if let Some(unserved) = &entry.unserved {
                    unserved::mark_unserved(&mut status, unserved);
                }
                status
            }
            Ok(None) => match &entry.note {
                Some(note) => render::from_note(
                    note,
                    key.kind == JobKind::Future,
                    entry.generation,
                    &store_id,
                ),
                // Not submitted yet: the reconciler's next message says more.
                None => return Outcome::Unchanged { key },
            },
            // The store failed: the last status, marked stopped (once).
            Err(reason) => {
                let at = crate::reconcile::rfc3339_ms(crate::wall_ms());
                match render::engine_stopped(entry.written.as_ref(), &reason, &at) {
                    Some(status) => {
                        events.push(events::engine_stopped(&reason));
                        status
                    }
                    None => return Outcome::Unchanged { key },
                }
            }
        };
        if entry.written.as_ref() == Some(&status) {
            return Outcome::Unchanged { key };
        }
        if let Some(at) = entry.first_write_at(self.interval)
            && !status.is_final()
            && Instant::now() < at
        {
            return Outcome::Held { key, until: at };
        }
        let body = StatusApply {
            api_version: kontinuum_api::API_VERSION,
            kind: key.kind.kind(),
            metadata: ApplyMetadata {
                name: &key.name,
                uid: &entry.uid,
            },
            status: &status,
        };
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = match key.kind {
            JobKind::Task => {
                Api::<kontinuum_api::Task>::namespaced(self.client.clone(), &key.namespace)
                    .patch_status(&key.name, &params, &Patch::Apply(&body))
                    .await
                    .map(|_| ())
            }
            JobKind::Future => Api::<kontinuum_api::HierarchicalFuture>::namespaced(
                self.client.clone(),
                &key.namespace,
            )
            .patch_status(&key.name, &params, &Patch::Apply(&body))
            .await
            .map(|_| ()),
        };
        match result {
            Ok(()) => {
                self.metrics
                    .status_patches
                    .with_label_values(&[key.kind.short()])
                    .inc();
                events.extend(events::between(entry.written.as_ref(), &status));
                Outcome::Wrote {
                    key,
                    uid: entry.uid,
                    status,
                    events,
                }
            }
            // 404: deleted; 409 on a uid precondition: deleted and created again.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Outcome::Gone { key },
            Err(e) => {
                tracing::warn!(object = %key, "patching the status: {e}");
                Outcome::Failed { key }
            }
        }
    }
}

/// The body of a status patch: the object named by name and uid (so that
/// a resource created again under the name is not written to), and the
/// status, which kube serializes into the request.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusApply<'a> {
    api_version: &'a str,
    kind: &'a str,
    metadata: ApplyMetadata<'a>,
    status: &'a JobStatus,
}

#[derive(Debug, Serialize)]
struct ApplyMetadata<'a> {
    name: &'a str,
    uid: &'a str,
}

fn object_reference(key: &JobKey, uid: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(kontinuum_api::API_VERSION.into()),
        kind: Some(key.kind.kind().into()),
        name: Some(key.name.clone()),
        namespace: Some(key.namespace.clone()),
        uid: Some(uid.into()),
        ..ObjectReference::default()
    }
}

/// Events go out on their own task, so a slow API server delays them, not
/// the statuses; when the queue is full they are dropped (and counted).
async fn publish_events(
    recorder: Recorder,
    mut rx: mpsc::Receiver<(ObjectReference, EventSpec)>,
    metrics: Arc<Metrics>,
) {
    while let Some((reference, spec)) = rx.recv().await {
        let mut note = spec.note;
        render::truncate(&mut note, render::MESSAGE_LIMIT);
        let event = Event {
            type_: if spec.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: spec.reason.into(),
            note: Some(note),
            action: spec.reason.into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            metrics.events_dropped.inc();
            tracing::debug!("publishing an event: {e}");
        }
    }
}
