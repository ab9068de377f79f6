//! The controllers' view of the engine: async calls (the engine blocks on
//! its lock and on fsync, so each call runs on the blocking pool) keyed by
//! the resource's identity.

use crate::error::Error;
use crate::job::JobKind;
use crate::reconcile::plan::Held;
use kontinuum_api::validate::{FieldError, Manifest, validate};
use kontinuum_api::{ObjectId, ObjectKind};
use kontinuum_engine::{Engine, EngineError, ObjectStatus, Submission};
use serde_json::Value;
use std::fmt;

/// A resource's identity in the engine: `NAMESPACE/KIND/NAME`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobKey {
    pub namespace: String,
    pub kind: JobKind,
    pub name: String,
}

impl JobKey {
    /// The engine's id for the resource.
    pub fn id(&self) -> ObjectId {
        let kind = match self.kind {
            JobKind::Task => ObjectKind::Task,
            JobKind::Future => ObjectKind::Future,
        };
        ObjectId::new(self.namespace.clone(), kind, self.name.clone())
    }
}

impl fmt::Display for JobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.kind.short(), self.name)
    }
}

/// What became of a submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Submitted {
    Accepted,
    /// The spec passed the CRD schema but not the engine's rules.
    Invalid(Refusal),
    /// The spec differs from the one the engine already runs under this id.
    SpecChanged,
    /// `spec.parentRef` names a future the engine does not hold (yet).
    ParentMissing(String),
    /// `spec.parentRef` names a future that has finished.
    ParentFinished(String),
}

/// Why a resource that passed the CRD schema is not run. Kept whole until
/// the status message is written, which is its [`fmt::Display`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// What the validator (the same as `kontinuum run`'s) found, every
    /// problem of the resource.
    Fields(Vec<FieldError>),
    /// `spec.map.source.lines.path` (quoted) is relative: the workers have
    /// no directory it could be relative to.
    RelativeLinesPath(String),
    /// A WorkerPool handed over as a job.
    NotAJob,
    /// The engine's own rules, which say why in words.
    Engine(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Fields(errors) => {
                for (i, e) in errors.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{e}")?;
                }
                Ok(())
            }
            Refusal::RelativeLinesPath(path) => write!(
                f,
                "spec.map.source.lines.path: '{path}' must be an absolute path on the workers' \
                 filesystem (for example a volume mounted in the WorkerPool's pod template)"
            ),
            Refusal::NotAJob => f.write_str("a WorkerPool is not a job"),
            Refusal::Engine(message) => f.write_str(message),
        }
    }
}

#[derive(Clone)]
pub struct Bridge {
    engine: Engine,
}

impl Bridge {
    pub fn new(engine: Engine) -> Bridge {
        Bridge { engine }
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<R, EngineError> + Send + 'static,
    ) -> Result<R, Error> {
        let engine = self.engine.clone();
        Ok(tokio::task::spawn_blocking(move || f(&engine)).await??)
    }

    /// What the engine holds under `key`, if anything.
    pub async fn held(&self, key: &JobKey) -> Result<Option<Held>, Error> {
        let id = key.id();
        self.call(move |e| {
            let (summary, status) = match (e.summary(&id), e.status(&id)) {
                (Ok(summary), Ok(status)) => (summary, status),
                (Err(EngineError::NotFound(_)), _) | (_, Err(EngineError::NotFound(_))) => {
                    return Ok(None);
                }
                (Err(other), _) | (_, Err(other)) => return Err(other),
            };
            Ok(Some(held_from(summary.uid, &status)))
        })
        .await
    }

    pub async fn status(&self, key: &JobKey) -> Result<Option<ObjectStatus>, Error> {
        let id = key.id();
        self.call(move |e| match e.status(&id) {
            Ok(status) => Ok(Some(status)),
            Err(EngineError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        })
        .await
    }

    /// The whole result of a final object (the status holds at most 4 KiB).
    pub async fn result(&self, key: &JobKey) -> Result<Option<Value>, Error> {
        let id = key.id();
        self.call(move |e| match e.result(&id) {
            Ok(result) => Ok(result),
            Err(EngineError::NotFound(_)) => Ok(None),
            Err(other) => Err(other),
        })
        .await
    }

    /// Validates the resource (the same rules as `kontinuum run`) and hands
    /// it to the engine, with its uid; a `spec.parentRef` joins that
    /// future's tree.
    pub async fn submit(
        &self,
        key: &JobKey,
        uid: &str,
        resource: Value,
    ) -> Result<Submitted, Error> {
        let mut submission = match submission_of(key, &resource) {
            Ok(s) => s,
            Err(refusal) => return Ok(Submitted::Invalid(refusal)),
        };
        submission.uid = Some(uid.to_string());
        self.call(move |e| match e.submit(vec![submission]) {
            Ok(()) => Ok(Submitted::Accepted),
            Err(EngineError::Invalid(message)) => Ok(Submitted::Invalid(Refusal::Engine(message))),
            Err(EngineError::Conflict { .. }) => Ok(Submitted::SpecChanged),
            Err(e @ EngineError::ParentNotFound(_)) => Ok(Submitted::ParentMissing(e.to_string())),
            Err(e @ EngineError::ParentFinished(_)) => Ok(Submitted::ParentFinished(e.to_string())),
            Err(other) => Err(other),
        })
        .await
    }

    /// [`Bridge::submit`] for a future with the resources that join its
    /// tree (`children`: key, uid, resource; parents first), in one engine
    /// decision. A child the engine refuses (an invalid spec, say) is left
    /// to its own reconcile: the future then goes alone.
    pub async fn submit_with_children(
        &self,
        key: &JobKey,
        uid: &str,
        resource: Value,
        children: Vec<(JobKey, String, Value)>,
    ) -> Result<Submitted, Error> {
        let mut parent = match submission_of(key, &resource) {
            Ok(s) => s,
            Err(refusal) => return Ok(Submitted::Invalid(refusal)),
        };
        parent.uid = Some(uid.to_string());
        let mut all = vec![parent];
        for (child_key, child_uid, child) in &children {
            if let Ok(mut s) = submission_of(child_key, child) {
                s.uid = Some(child_uid.clone());
                all.push(s);
            }
        }
        if all.len() > 1 {
            let together = all.clone();
            match self.call(move |e| e.submit(together)).await {
                Ok(()) => return Ok(Submitted::Accepted),
                Err(Error::Engine(e)) => {
                    tracing::info!(object = %key, "submitted without the resources that join it: {e}");
                }
                Err(other) => return Err(other),
            }
        }
        self.submit(key, uid, resource).await
    }

    /// Cancels the whole tree (and the objects that joined it).
    pub async fn cancel(&self, key: &JobKey) -> Result<(), Error> {
        let id = key.id();
        self.call(move |e| match e.cancel(&id) {
            Ok(()) | Err(EngineError::NotFound(_)) => Ok(()),
            Err(other) => Err(other),
        })
        .await
    }

    /// Forgets a final object's records and its continuation's (cancelled
    /// first if it still runs): a deleted resource leaves nothing in the
    /// engine. An active object is refused (cancel first). Gone already is
    /// fine.
    pub async fn remove(&self, key: &JobKey) -> Result<(), Error> {
        let id = key.id();
        self.call(move |e| match e.remove(&id) {
            Ok(()) | Err(EngineError::NotFound(_)) => Ok(()),
            Err(other) => Err(other),
        })
        .await
    }

    /// The store's identity, written into every status.
    pub fn store_id(&self) -> &str {
        self.engine.store_id()
    }
}

fn held_from(uid: Option<String>, status: &ObjectStatus) -> Held {
    let (is_final, finished) = match status {
        ObjectStatus::Task(s) => (status.is_final(), s.finished_at.as_deref()),
        ObjectStatus::Future(s) => (status.is_final(), s.finished_at.as_deref()),
    };
    Held {
        uid,
        is_final,
        finished_ms: finished.and_then(parse_rfc3339_ms),
    }
}

pub fn parse_rfc3339_ms(s: &str) -> Option<u64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
}

/// The engine's submission for a resource, or why there is none.
fn submission_of(key: &JobKey, resource: &Value) -> Result<Submission, Refusal> {
    let manifest = validate(resource).map_err(Refusal::Fields)?;
    match manifest {
        Manifest::Task(task) => Ok(Submission::task(&key.namespace, &key.name, task.spec)),
        Manifest::Future(future) => {
            if let Some(lines) = future
                .spec
                .map
                .as_ref()
                .and_then(|m| m.source.lines.as_ref())
                && !std::path::Path::new(&lines.path).is_absolute()
            {
                return Err(Refusal::RelativeLinesPath(lines.path.clone()));
            }
            Ok(Submission::future(&key.namespace, &key.name, future.spec))
        }
        Manifest::WorkerPool(_) => Err(Refusal::NotAJob),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(kind: JobKind) -> JobKey {
        JobKey {
            namespace: "ns".into(),
            kind,
            name: "x".into(),
        }
    }

    /// The message a refused resource shows, as it was when every refusal
    /// was folded into a string on the spot.
    #[test]
    fn a_refusal_says_what_the_folded_message_said() {
        let task = json!({"apiVersion": kontinuum_api::API_VERSION, "kind": "Task",
            "metadata": {"name": "x"},
            "spec": {"call": {"function": "std.echo"}, "retry": {"maxAttempts": 0}, "bogus": 1}});
        let Err(Refusal::Fields(errors)) = submission_of(&key(JobKind::Task), &task) else {
            panic!("the task is invalid");
        };
        assert!(errors.len() > 1, "{errors:?}");
        let folded = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        assert_eq!(Refusal::Fields(errors).to_string(), folded);

        let future = json!({"apiVersion": kontinuum_api::API_VERSION,
            "kind": "HierarchicalFuture", "metadata": {"name": "x"},
            "spec": {"map": {"source": {"lines": {"path": "data.txt"}},
                "function": {"function": "std.echo"}}}});
        let refusal = submission_of(&key(JobKind::Future), &future).err();
        assert_eq!(
            refusal.map(|r| r.to_string()).as_deref(),
            Some(
                "spec.map.source.lines.path: 'data.txt' must be an absolute path on the workers' filesystem (for example a volume mounted in the WorkerPool's pod template)"
            )
        );
        assert_eq!(Refusal::NotAJob.to_string(), "a WorkerPool is not a job");
        assert_eq!(Refusal::Engine("said so".into()).to_string(), "said so");
    }
}
