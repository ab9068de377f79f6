//! The engine's calls about objects (Tasks and HierarchicalFutures, keyed
//! by `NAMESPACE/KIND/NAME`): submit, status, tree, result, cancel, list,
//! remove. engine.rs has the workers' calls.

use crate::build::{self, Named};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::machine::{CONTINUATION_SUFFIXES, RootOutcome, State};
use crate::public::{ObjectStatus, ObjectSummary, Submission, SubmissionBody, TreeView};
use crate::records::{Node, Root, RootKind, RootState};
use crate::status;
use crate::store::StoredRoot;
use kontinuum_api::common::{ErrorInfo, ErrorKind};
use kontinuum_api::work::NodeId;
use kontinuum_api::{ObjectId, ObjectKind};
use std::collections::HashMap;

/// Objects per decision when a submission is applied.
const SUBMIT_CHUNK: usize = 1000;

enum Plan {
    Task(Box<build::TaskPlan>),
    Future(Box<build::FuturePlan>),
}

/// The future a new object joins: one already running, or one earlier in
/// the same submission (by its place among the new objects).
enum Parent {
    Root(NodeId, ObjectId),
    New(usize),
}

impl Engine {
    /// Accepts objects; they are on disk when this returns. All or nothing.
    ///
    /// An id that exists with the same spec (and the same uid, or none
    /// given) is a no-op, so a rerun resumes; another uid is
    /// [`EngineError::UidMismatch`], another spec [`EngineError::Conflict`].
    /// An object with a parent (`Submission::parent`, or the spec's
    /// `parentRef`) joins that future's tree; the parent must be a running
    /// future, or come earlier in the same call.
    pub fn submit(&self, objects: Vec<Submission>) -> Result<(), EngineError> {
        let now = self.now();
        let mut plans: Vec<(Named, Plan, Option<Parent>)> = Vec::with_capacity(objects.len());
        // Objects this call creates, by id: their place in `plans`.
        let mut new: HashMap<&ObjectId, usize> = HashMap::with_capacity(objects.len());
        let mut seen = std::collections::HashSet::with_capacity(objects.len());
        for object in &objects {
            crate::guard::submission(object)?;
        }
        let guard = self.inner.submitting.lock();
        for object in &objects {
            let id = &object.id;
            check_id(object)?;
            if !seen.insert(id) {
                return Err(EngineError::Invalid(format!(
                    "{id} appears twice in one submission"
                )));
            }
            let hash = match &object.body {
                SubmissionBody::Task(spec) => build::spec_hash("Task", spec),
                SubmissionBody::Future(spec) => build::spec_hash("HierarchicalFuture", spec),
            };
            if let Some(existing) = self.inner.store.object(id)? {
                let root = existing.root;
                if object.uid.is_some() && object.uid != root.uid {
                    return Err(EngineError::UidMismatch {
                        id: id.clone(),
                        stored_uid: root.uid,
                    });
                }
                if root.spec_hash.as_deref() != Some(hash.as_str()) {
                    return Err(EngineError::Conflict { id: id.clone() });
                }
                continue;
            }
            let parent = match object.parent_id() {
                None => None,
                Some(p) => Some(self.parent(object, p, &new)?),
            };
            let plan = match &object.body {
                SubmissionBody::Task(spec) => Plan::Task(Box::new(build::plan_task(spec, now)?)),
                SubmissionBody::Future(spec) => {
                    Plan::Future(Box::new(build::plan_future(spec, now)?))
                }
            };
            let named = Named {
                id: id.clone(),
                uid: object.uid.clone(),
                spec_hash: hash,
            };
            new.insert(id, plans.len());
            plans.push((named, plan, parent));
        }
        // Decisions of SUBMIT_CHUNK objects: one sled batch of 50,000
        // records kept every intermediate page version alive until it was
        // done (330 MB for 22 MB of records). A crash between chunks keeps
        // a prefix; the client had no answer, and resubmitting is
        // idempotent (same ids and specs), so nothing is lost or doubled.
        // A parent always comes before its children in `plans`.
        let mut plans = plans.into_iter().peekable();
        // The root of each object created so far, by its place in `plans`.
        let mut created: Vec<NodeId> = Vec::new();
        let mut ticket;
        loop {
            let chunk: Vec<_> = plans.by_ref().take(SUBMIT_CHUNK).collect();
            let mut st = self.inner.state.lock();
            ((), ticket) = self.decide(&mut st, |st, tx, store| {
                // A parent found running above may have ended since: check
                // before anything changes.
                for (_, _, parent) in &chunk {
                    if let Some(Parent::Root(root, id)) = parent
                        && !st.roots.contains_key(root)
                    {
                        return Err(EngineError::ParentFinished(id.clone()));
                    }
                }
                for (named, plan, parent) in chunk {
                    let namespace = named.id.namespace.clone();
                    let id = match plan {
                        Plan::Task(p) => {
                            build::apply_task(st, tx, store, &namespace, Some(named), *p)?
                        }
                        Plan::Future(p) => build::apply_future(st, tx, named, *p)?,
                    };
                    created.push(id);
                    let parent_root = match parent {
                        None => None,
                        Some(Parent::Root(root, _)) => Some(root),
                        Some(Parent::New(i)) => created.get(i).copied(),
                    };
                    if let Some(parent_root) = parent_root {
                        st.link(tx, store, parent_root, id)?;
                    }
                }
                Ok(())
            })?;
            if plans.peek().is_none() {
                break;
            }
        }
        drop(guard);
        self.inner.store.wait_durable(ticket)
    }

    /// Where the future `parent` of `object` is: running, or new in this call.
    fn parent(
        &self,
        object: &Submission,
        parent: ObjectId,
        new: &HashMap<&ObjectId, usize>,
    ) -> Result<Parent, EngineError> {
        let id = &object.id;
        if parent.kind != ObjectKind::Future {
            return Err(EngineError::Invalid(format!(
                "{id}: its parent {parent} is not a HierarchicalFuture; only a future has children"
            )));
        }
        if parent.namespace != id.namespace {
            return Err(EngineError::Invalid(format!(
                "{id}: its parent {parent} is in another namespace; a tree stays in one namespace"
            )));
        }
        if let Some(&i) = new.get(&parent) {
            return Ok(Parent::New(i));
        }
        let stored = self
            .inner
            .store
            .object(&parent)?
            .ok_or_else(|| EngineError::ParentNotFound(parent.clone()))?;
        if stored.root.state != RootState::Active {
            return Err(EngineError::ParentFinished(parent));
        }
        Ok(Parent::Root(stored.root.id, parent))
    }

    /// Every object the store holds.
    pub fn objects(&self) -> Result<Vec<ObjectId>, EngineError> {
        self.inner.store.check()?;
        self.inner.store.objects()
    }

    /// One page of objects whose id starts with `prefix` (`default/`, or
    /// `default/task/`), of `kind` if given, after `after` in id order: at
    /// most `limit`, and whether more follow.
    pub fn objects_page(
        &self,
        prefix: &str,
        kind: Option<ObjectKind>,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<(Vec<ObjectId>, bool), EngineError> {
        self.inner.store.check()?;
        let mut ids =
            self.inner
                .store
                .objects_page(prefix, kind, after, limit.saturating_add(1))?;
        let more = ids.len() > limit;
        ids.truncate(limit);
        Ok((ids, more))
    }

    /// `Err(StoreFailed)` once a write failed: the engine then refuses
    /// every call until it is opened again (a restart).
    pub fn health(&self) -> Result<(), EngineError> {
        self.inner.store.check()
    }

    /// Every object the store holds with its uid and phase, for garbage
    /// collection (what is final, what no custom resource stands for).
    pub fn list(&self) -> Result<Vec<ObjectSummary>, EngineError> {
        self.inner.store.check()?;
        let records = self.inner.store.object_records()?;
        let st = self.inner.state.lock();
        Ok(records
            .into_iter()
            .map(|(id, stored)| {
                let StoredRoot { root, node } = live(&st, stored);
                let phase = match root.kind {
                    RootKind::Task => status::task_phase(&root, node.as_ref()),
                    RootKind::Future => status::future_phase(&root),
                };
                ObjectSummary {
                    id,
                    uid: root.uid,
                    phase,
                }
            })
            .collect())
    }

    /// One object's id, uid and phase.
    pub fn summary(&self, id: &ObjectId) -> Result<ObjectSummary, EngineError> {
        let st = self.inner.state.lock();
        let StoredRoot { root, node } = self.root_of(&st, id)?;
        let phase = match root.kind {
            RootKind::Task => status::task_phase(&root, node.as_ref()),
            RootKind::Future => status::future_phase(&root),
        };
        Ok(ObjectSummary {
            id: id.clone(),
            uid: root.uid,
            phase,
        })
    }

    /// An object's root record, the live copy while it runs.
    fn root_of(&self, st: &State, id: &ObjectId) -> Result<StoredRoot, EngineError> {
        // What memory holds after a failed write was never stored: showing
        // it would let progress run ahead of what a restart finds.
        self.inner.store.check()?;
        let stored = self
            .inner
            .store
            .object(id)?
            .ok_or_else(|| EngineError::NotFound(id.clone()))?;
        Ok(live(st, stored))
    }

    /// The object's status as its custom resource shows it: phase, attempts,
    /// progress (live, never going back), counts, result (up to 4 KiB;
    /// larger ones through [`Engine::result`]), continuation.
    pub fn status(&self, id: &ObjectId) -> Result<ObjectStatus, EngineError> {
        let mut st = self.inner.state.lock();
        let StoredRoot { root, node } = self.root_of(&st, id)?;
        match root.kind {
            RootKind::Task => Ok(ObjectStatus::Task(status::task_status(
                &root,
                node.as_ref(),
            ))),
            RootKind::Future => {
                let computed = if root.state == RootState::Active {
                    st.live_done(&root)
                } else {
                    root.done
                };
                // Progress never goes back, even when a retried leaf's new
                // attempt reports less than the last one did.
                let shown = st.shown_done.entry(root.id).or_insert(0);
                *shown = (*shown).max(computed);
                let done = *shown;
                if root.state != RootState::Active {
                    st.shown_done.remove(&root.id);
                }
                Ok(ObjectStatus::Future(status::future_status(
                    &root,
                    done,
                    self.now(),
                )))
            }
        }
    }

    /// The object of the continuation started for this object's outcome
    /// (`NS/task/NAME.on-success` or `.on-failure`), once there is one.
    pub fn continuation(&self, id: &ObjectId) -> Result<Option<ObjectId>, EngineError> {
        let st = self.inner.state.lock();
        Ok(self.root_of(&st, id)?.root.continuation_object)
    }

    /// The object's tree with per-node state and progress, at most
    /// `max_nodes` nodes (breadth first).
    pub fn tree(&self, id: &ObjectId, max_nodes: usize) -> Result<TreeView, EngineError> {
        let st = self.inner.state.lock();
        let StoredRoot { root, node } = self.root_of(&st, id)?;
        crate::tree::view(&st, &self.inner.store, &root, node, max_nodes)
    }

    /// The whole result of an object, also when it is too large for the
    /// status (which then carries only `resultRef`).
    pub fn result(&self, id: &ObjectId) -> Result<Option<serde_json::Value>, EngineError> {
        let st = self.inner.state.lock();
        Ok(self.root_of(&st, id)?.root.result)
    }

    /// Cancels an object's whole tree: queued work is dropped, running work
    /// sees it at its next heartbeat, objects that joined it are cancelled.
    /// A final object stays as it is.
    pub fn cancel(&self, id: &ObjectId) -> Result<(), EngineError> {
        let root_id = self
            .inner
            .store
            .object(id)?
            .ok_or_else(|| EngineError::NotFound(id.clone()))?
            .root
            .id;
        self.commit(|st, tx, store| {
            let error = ErrorInfo {
                message: "cancelled".into(),
                kind: ErrorKind::Cancelled,
                attempt: 0,
            };
            st.finish_root(tx, store, root_id, RootOutcome::Cancelled(error))
        })
    }

    /// Deletes every record of a final object: its root record, its tree's
    /// nodes, the values they hold and its map items, and its continuation
    /// (`NAME.on-success` or `.on-failure`) with it, cancelled first if it
    /// has not ended: a deleted resource leaves nothing behind, and a
    /// resource created again under the name gets a continuation of its
    /// own. The objects that joined its tree are objects of their own and
    /// stay. An active object is refused ([`EngineError::Active`]): cancel
    /// it first.
    pub fn remove(&self, id: &ObjectId) -> Result<(), EngineError> {
        // No submission of this id between the check and the removal.
        let _guard = self.inner.submitting.lock();
        let stored = self
            .inner
            .store
            .object(id)?
            .ok_or_else(|| EngineError::NotFound(id.clone()))?;
        let root_id = stored.root.id;
        if stored.root.state == RootState::Active {
            return Err(EngineError::Active(id.clone()));
        }
        let continuation = self.own_continuation(&stored.root)?;
        if let Some((_, cont_root)) = &continuation {
            // Ends the run first (a worker running it sees the cancellation
            // at its next heartbeat); its records go below, with the object's.
            let cont_root = *cont_root;
            self.commit(|st, tx, store| {
                let error = ErrorInfo {
                    message: format!("cancelled: {id} was deleted"),
                    kind: ErrorKind::Cancelled,
                    attempt: 0,
                };
                st.finish_root(tx, store, cont_root, RootOutcome::Cancelled(error))
            })?;
        }
        self.commit(|st, tx, store| {
            if st.roots.contains_key(&root_id) {
                return Err(EngineError::Active(id.clone()));
            }
            tx.writes.del_object(store, id, root_id)?;
            st.removed(id);
            if let Some((cont_id, cont_root)) = &continuation {
                tx.writes.del_object(store, cont_id, *cont_root)?;
                st.removed(cont_id);
            }
            Ok(())
        })
    }

    /// The continuation this object started, if its record is still the
    /// one it started (a record of that name from another run is not its).
    fn own_continuation(&self, root: &Root) -> Result<Option<(ObjectId, NodeId)>, EngineError> {
        let (Some(cont_id), Some(cont_root)) = (&root.continuation_object, root.continuation)
        else {
            return Ok(None);
        };
        Ok(self
            .inner
            .store
            .object(cont_id)?
            .filter(|c| c.root.id == cont_root)
            .map(|_| (cont_id.clone(), cont_root)))
    }
}

/// The stored record, or the live one while the object runs.
fn live(st: &State, mut stored: StoredRoot) -> StoredRoot {
    if let Some(root) = st.roots.get(&stored.root.id) {
        stored.root = Root::clone(root);
        stored.node = st.nodes.get(&root.id).map(|n| Node::clone(n));
    }
    stored
}

/// Ids the engine can key by, whose kind matches the body, and that no
/// continuation will want.
fn check_id(object: &Submission) -> Result<(), EngineError> {
    let id = &object.id;
    id.check()
        .map_err(|e| EngineError::Invalid(format!("object id: {e}")))?;
    if id.kind != object.kind() {
        return Err(EngineError::Invalid(format!(
            "{id}: the id says {} but the body is a {}",
            id.kind.resource_kind(),
            object.kind().resource_kind()
        )));
    }
    if let Some(suffix) = CONTINUATION_SUFFIXES.iter().find(|s| id.name.ends_with(*s)) {
        return Err(EngineError::Invalid(format!(
            "metadata.name: '{}' ends in '{suffix}', which names the continuation of '{}'; choose another name",
            id.name,
            id.name.trim_end_matches(suffix)
        )));
    }
    Ok(())
}
