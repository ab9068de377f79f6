//! The Task and HierarchicalFuture reconciler: read → [`plan::plan`] →
//! carry out the steps. Level-triggered and idempotent: any reconcile of any
//! resource, repeated or after a restart, converges on the same state, and
//! the engine refuses to run one id twice.

pub mod finalizer;
pub mod joining;
pub mod plan;
#[cfg(test)]
mod scripted;
pub mod serving;

use crate::bridge::{Bridge, JobKey, Submitted, parse_rfc3339_ms};
use crate::error::Error;
use crate::job::{Job, JobKind};
use crate::metrics::Metrics;
use crate::status::{JobStatus, Note, StatusHandle, StatusMsg};
use kontinuum_api::{HierarchicalFuture, Task, WorkerPool};
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::{Api, Client, Resource, ResourceExt};
use plan::{Observed, Step};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cancels the tree before the resource goes.
pub const FINALIZER: &str = "kontinuum.dev/cancel";
/// Field manager of the operator's metadata (finalizer, ownerReference).
const METADATA_MANAGER: &str = "kontinuum-operator";

pub struct Context {
    pub client: Client,
    pub bridge: Bridge,
    pub status: StatusHandle,
    pub metrics: Arc<Metrics>,
    /// The controllers' caches (one per watched namespace, or one for all):
    /// where a future finds the resources that join its tree.
    pub tasks: Vec<Store<Task>>,
    pub futures: Vec<Store<HierarchicalFuture>>,
    /// The WorkerPool controllers' caches and the connected workers: what
    /// serves a job's pool (see [`serving`]).
    pub pools: Vec<Store<WorkerPool>>,
    pub roster: kontinuum_server::Roster,
    /// Futures held back before their submission, for their pool's scaler.
    pub settling: Arc<crate::pool::settling::Settling>,
    /// When this operator began to lead.
    pub leading_since: Instant,
    /// Failed reconciles in a row, per object (see [`crate::backoff`]).
    pub backoff: crate::backoff::Backoff,
}

fn now_ms() -> u64 {
    crate::wall_ms()
}

/// The object's name in logs and in the backoff's memory.
fn object_name<K: Job>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        obj.namespace().unwrap_or_default(),
        K::KIND.short(),
        obj.name_any()
    )
}

pub async fn reconcile<K: Job>(obj: Arc<K>, ctx: Arc<Context>) -> Result<Action, Error> {
    let object = object_name(obj.as_ref());
    let run = reconcile_inner(obj, &ctx);
    ctx.backoff
        .reconcile(&ctx.metrics, K::KIND.short(), &object, run)
        .await
}

pub fn error_policy<K: Job>(obj: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action {
    let object = object_name(obj.as_ref());
    ctx.backoff
        .after_failure(&ctx.metrics, K::KIND.short(), &object, error)
}

async fn reconcile_inner<K: Job>(obj: Arc<K>, ctx: &Context) -> Result<Action, Error> {
    let seen = observe(obj.as_ref(), ctx).await?;
    if !seen.observed.deleting {
        ctx.status
            .send(StatusMsg::Observe {
                key: seen.key.clone(),
                uid: seen.observed.uid.clone(),
                generation: obj.meta().generation,
                current: obj.current_status(),
            })
            .await;
    }
    // When to look again (None: on the next change only).
    let mut again: Option<Duration> = None;
    let steps = plan::plan(&seen.observed);
    if K::KIND == JobKind::Future && !steps.contains(&Step::Submit) {
        // Not (or no longer) waiting to be submitted: nothing to count.
        ctx.settling.release(&seen.key.namespace, &seen.name);
    }
    for step in steps {
        if let Some(d) = carry_out(step, obj.as_ref(), &seen, ctx).await? {
            again = Some(d);
        }
    }
    let o = &seen.observed;
    let runs = !o.deleting && !o.recorded.is_final && o.held.as_ref().is_none_or(|h| !h.is_final);
    if runs && let Some(serving) = check_serving(ctx, &seen.key, obj.as_ref()).await {
        // The sooner of the two: a reconcile repeats nothing.
        again = Some(again.map_or(serving, |d| d.min(serving)));
    }
    Ok(again.map_or_else(Action::await_change, Action::requeue))
}

/// What one reconcile knows of its resource: the resource's key and
/// what the plan is made from.
struct Seen {
    key: JobKey,
    name: String,
    parent: Option<String>,
    observed: Observed,
}

/// Reads what the plan needs: the resource's metadata, status and
/// annotations, and what the engine holds under its id.
async fn observe<K: Job>(obj: &K, ctx: &Context) -> Result<Seen, Error> {
    let meta = obj.meta();
    let (Some(namespace), Some(name), Some(uid)) =
        (meta.namespace.clone(), meta.name.clone(), meta.uid.clone())
    else {
        return Err(Error::Invalid(
            "resource without namespace, name or uid".into(),
        ));
    };
    let key = JobKey {
        namespace,
        kind: K::KIND,
        name: name.clone(),
    };
    let parent = obj.parent().map(str::to_string);
    let owned_by_parent = parent.as_ref().is_some_and(|p| {
        obj.owner_references()
            .iter()
            .any(|o| o.kind == JobKind::Future.kind() && &o.name == p)
    });
    let store_id = ctx.bridge.store_id();
    let observed = Observed {
        uid,
        deleting: meta.deletion_timestamp.is_some(),
        has_finalizer: obj.finalizers().iter().any(|f| f == FINALIZER),
        parent: parent.clone(),
        owned_by_parent,
        held: ctx.bridge.held(&key).await?,
        recorded: recorded(obj.current_status().as_ref(), obj.annotations(), store_id),
        store_id: store_id.to_string(),
        ttl: obj
            .ttl_after_finished()
            .and_then(|t| kontinuum_api::duration::parse_duration(t).ok()),
        now_ms: now_ms(),
    };
    Ok(Seen {
        key,
        name,
        parent,
        observed,
    })
}

/// Carries out one step of the plan; when to look again, if it says.
async fn carry_out<K: Job>(
    step: Step,
    obj: &K,
    seen: &Seen,
    ctx: &Context,
) -> Result<Option<Duration>, Error> {
    let (key, name, uid) = (&seen.key, &seen.name, &seen.observed.uid);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &key.namespace);
    match step {
        Step::Claim | Step::OwnByParent => {
            let owner = match &seen.parent {
                Some(p) => parent_owner(&ctx.client, &key.namespace, p).await?,
                None => None,
            };
            apply_metadata::<K>(&api, name, uid, owner).await?;
        }
        Step::Submit => return submit(ctx, key, uid, obj, seen.parent.as_deref()).await,
        Step::Orphan { previous } => orphan(ctx, key, previous).await,
        Step::DropStale => {
            ctx.bridge.cancel(key).await?;
            ctx.bridge.remove(key).await?;
        }
        Step::Cancel => ctx.bridge.cancel(key).await?,
        Step::Remove => {
            ctx.bridge.remove(key).await?;
            ctx.status
                .send(StatusMsg::Forget { key: key.clone() })
                .await;
        }
        Step::Release => {
            release_finalizer::<K>(&api, name, uid, obj.finalizers()).await?;
            ctx.status
                .send(StatusMsg::Forget { key: key.clone() })
                .await;
        }
        Step::Delete => delete_expired(&api, key, uid).await?,
        Step::RequeueAfter(d) => return Ok(Some(d)),
    }
    Ok(None)
}

/// Not run again: its status names a store this operator does not hold.
async fn orphan(ctx: &Context, key: &JobKey, previous: String) {
    let message = crate::status::render::store_replaced_message(
        key.kind.short(),
        &key.name,
        &previous,
        ctx.bridge.store_id(),
    );
    tracing::warn!(object = %key, "not run again: {message}");
    let note = Note::StoreReplaced {
        previous,
        message,
        at: rfc3339_ms(now_ms()),
    };
    ctx.status
        .send(StatusMsg::Note {
            key: key.clone(),
            note: Some(note),
        })
        .await;
}

/// `ttlAfterFinished` passed: deletes the resource of this uid (not one
/// created again under the name).
async fn delete_expired<K: Job>(api: &Api<K>, key: &JobKey, uid: &str) -> Result<(), Error> {
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&key.name, &params).await {
        Ok(_) => {
            tracing::info!(object = %key, "ttlAfterFinished passed: deleted");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(Error::kube("delete after ttlAfterFinished")(e)),
    }
}

/// Tells the status writer whether anything serves the job's pool; the
/// time to look again while nothing does (or it is too early to tell).
async fn check_serving<K: Job>(ctx: &Context, key: &JobKey, obj: &K) -> Option<Duration> {
    use futures::FutureExt;
    let pool = obj.pool();
    let pool_exists = ctx.pools.iter().any(|store| {
        store
            .find(|p| {
                p.namespace().as_deref() == Some(key.namespace.as_str()) && p.name_any() == pool
            })
            .is_some()
    });
    let pools_synced = ctx
        .pools
        .iter()
        .all(|store| matches!(store.wait_until_ready().now_or_never(), Some(Ok(()))));
    let created_ms = obj
        .meta()
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.as_millisecond());
    let age = created_ms.map_or(Duration::ZERO, |c| {
        Duration::from_millis(now_ms().saturating_sub(u64::try_from(c).unwrap_or(0)))
    });
    let seen = serving::Seen {
        pool_exists,
        connected_workers: ctx.roster.pool(&key.namespace, pool).workers,
        pools_synced,
        age,
        leading_for: ctx.leading_since.elapsed(),
    };
    let unserved = match serving::judge(seen) {
        serving::Serving::Served => None,
        serving::Serving::TooEarly(wait) => return Some(wait),
        serving::Serving::Unserved => Some(crate::status::unserved::Unserved {
            namespace: key.namespace.clone(),
            pool: pool.to_string(),
        }),
    };
    let again = unserved.is_some().then_some(serving::RECHECK);
    ctx.status
        .send(StatusMsg::Serving {
            key: key.clone(),
            unserved,
        })
        .await;
    again
}

/// Submits; returns when to look again, if soon.
async fn submit<K: Job>(
    ctx: &Context,
    key: &JobKey,
    uid: &str,
    obj: &K,
    parent: Option<&str>,
) -> Result<Option<Duration>, Error> {
    if key.kind == JobKind::Future
        && let Some(wait) = joining::settle_left(
            obj.meta()
                .creation_timestamp
                .as_ref()
                .map(|t| t.0.as_millisecond()),
            now_ms(),
        )
    {
        // Resources applied with it (`kubectl apply -f` of a tree) may not
        // exist yet: give them a moment to, so they join with it. Its pool
        // counts its work meanwhile.
        ctx.settling
            .hold(&key.namespace, &key.name, obj.pool(), obj.tasks_ahead());
        return Ok(Some(wait));
    }
    if key.kind == JobKind::Future {
        // From here the engine counts it.
        ctx.settling.release(&key.namespace, &key.name);
    }
    let resource = serde_json::to_value(obj).map_err(|e| Error::Invalid(e.to_string()))?;
    let submitted = if key.kind == JobKind::Future {
        let children = joining_resources(ctx, key).await?;
        ctx.bridge
            .submit_with_children(key, uid, resource, children)
            .await?
    } else {
        ctx.bridge.submit(key, uid, resource).await?
    };
    let note = match submitted {
        Submitted::Accepted => None,
        Submitted::Invalid(refusal) => Some(Note::Rejected {
            refusal,
            at: rfc3339_ms(now_ms()),
        }),
        Submitted::SpecChanged => {
            tracing::warn!(object = %key, "the spec differs from the one the engine runs; ignored");
            None
        }
        Submitted::ParentMissing(message) => {
            // The parent's own reconcile submits it; look again soon.
            let message = format!(
                "waiting for HierarchicalFuture '{}' (spec.parentRef.name): {message}",
                parent.unwrap_or_default()
            );
            ctx.status
                .send(StatusMsg::Note {
                    key: key.clone(),
                    note: Some(Note::WaitingForParent { message }),
                })
                .await;
            return Ok(Some(Duration::from_secs(2)));
        }
        Submitted::ParentFinished(message) => Some(Note::ParentFinished {
            message,
            at: rfc3339_ms(now_ms()),
        }),
    };
    ctx.status
        .send(StatusMsg::Note {
            key: key.clone(),
            note,
        })
        .await;
    ctx.status
        .send(StatusMsg::Changed {
            keys: vec![key.clone()],
        })
        .await;
    Ok(None)
}

/// The resources of the namespace that join the future `key`'s tree and are
/// not in the engine yet, parents first (see [`joining`]).
async fn joining_resources(
    ctx: &Context,
    key: &JobKey,
) -> Result<Vec<(JobKey, String, Value)>, Error> {
    let mut candidates = Vec::new();
    let mut resources = Vec::new();
    let mut submittable = Vec::new();
    let store_id = ctx.bridge.store_id();
    let may_submit = |status: Option<JobStatus>, annotations: &std::collections::BTreeMap<_, _>| {
        let recorded = recorded(status.as_ref(), annotations, store_id);
        plan::unheld(&recorded, store_id) == plan::Unheld::Submit
    };
    let in_namespace = |ns: Option<String>| ns.as_deref() == Some(key.namespace.as_str());
    for task in ctx.tasks.iter().flat_map(Store::state) {
        if in_namespace(task.namespace()) && task.spec.parent_ref.is_some() {
            candidates.push(candidate(task.as_ref()));
            submittable.push(may_submit(task.current_status(), task.annotations()));
            resources.push(serde_json::to_value(task.as_ref()));
        }
    }
    for future in ctx.futures.iter().flat_map(Store::state) {
        if in_namespace(future.namespace()) && future.spec.parent_ref.is_some() {
            candidates.push(candidate(future.as_ref()));
            submittable.push(may_submit(future.current_status(), future.annotations()));
            resources.push(serde_json::to_value(future.as_ref()));
        }
    }
    for (c, submittable) in candidates.iter_mut().zip(&submittable) {
        // One that must not be submitted (finished, or orphaned by a
        // replaced store) is left to its own reconcile, as a held one is.
        c.held = !submittable || ctx.bridge.held(&c.key).await?.is_some();
    }
    let mut out = Vec::new();
    for i in joining::joining(&key.name, &candidates) {
        if let Ok(resource) = &resources[i] {
            let c = &candidates[i];
            out.push((c.key.clone(), c.uid.clone(), resource.clone()));
        }
    }
    Ok(out)
}

fn candidate<K: Job>(obj: &K) -> joining::Candidate {
    let meta = obj.meta();
    joining::Candidate {
        key: JobKey {
            namespace: meta.namespace.clone().unwrap_or_default(),
            kind: K::KIND,
            name: meta.name.clone().unwrap_or_default(),
        },
        uid: meta.uid.clone().unwrap_or_default(),
        parent: obj.parent().map(str::to_string),
        created: meta
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        deleting: meta.deletion_timestamp.is_some(),
        held: false,
    }
}

/// Milliseconds since the epoch as RFC 3339 (UTC, milliseconds).
pub(crate) fn rfc3339_ms(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// What a resource's status and annotations record of its past runs.
fn recorded(
    status: Option<&JobStatus>,
    annotations: &std::collections::BTreeMap<String, String>,
    store_id: &str,
) -> plan::Recorded {
    let view = status.map(JobStatus::view);
    plan::Recorded {
        is_final: status.is_some_and(JobStatus::is_final),
        finished_ms: view.and_then(|v| v.finished_at).and_then(parse_rfc3339_ms),
        store: view.and_then(|v| v.store_id).map(str::to_string),
        rerun_asked: annotations
            .get(crate::status::render::RERUN_ANNOTATION)
            .is_some_and(|v| v == store_id),
    }
}

/// The parent future's ownerReference, once it exists.
async fn parent_owner(
    client: &Client,
    namespace: &str,
    parent: &str,
) -> Result<Option<Value>, Error> {
    let api: Api<HierarchicalFuture> = Api::namespaced(client.clone(), namespace);
    let Some(p) = api
        .get_opt(parent)
        .await
        .map_err(Error::kube("read the parent future"))?
    else {
        return Ok(None);
    };
    Ok(p.meta().uid.clone().map(|uid| {
        json!({
            "apiVersion": kontinuum_api::API_VERSION,
            "kind": JobKind::Future.kind(),
            "name": parent,
            "uid": uid,
            "blockOwnerDeletion": true,
        })
    }))
}

/// Removes [`FINALIZER`] however it got there (see [`finalizer`]). The
/// list read may be stale (the controller's cache lags its own last
/// write): when the API server refuses the patch's tests, the object is
/// read afresh and the release tried once more on what it holds now.
async fn release_finalizer<K: Job>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    finalizers: &[String],
) -> Result<(), Error> {
    let mut finalizers = finalizers.to_vec();
    for attempt in 0..2 {
        let Some(patch) = finalizer::release_patch(uid, &finalizers) else {
            return Ok(());
        };
        match api
            .patch(name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => return Ok(()),
            // Gone already.
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(()),
            // A test failed: read what is there now.
            Err(kube::Error::Api(s)) if s.code == 422 && attempt == 0 => {
                match api
                    .get_opt(name)
                    .await
                    .map_err(Error::kube("read the resource to release its finalizer"))?
                {
                    Some(now) if now.meta().uid.as_deref() == Some(uid) => {
                        finalizers = now.finalizers().to_vec();
                    }
                    // Deleted, or another resource under the name.
                    _ => return Ok(()),
                }
            }
            Err(e) => return Err(Error::kube("release the finalizer")(e)),
        }
    }
    Ok(())
}

/// The operator's part of the metadata, by server-side apply: the
/// finalizer, and the parent's ownerReference when given.
async fn apply_metadata<K: Job>(
    api: &Api<K>,
    name: &str,
    uid: &str,
    owner: Option<Value>,
) -> Result<(), Error> {
    let mut metadata = json!({"name": name, "uid": uid, "finalizers": [FINALIZER]});
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner]);
    }
    let body = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": metadata,
    });
    match api
        .patch(
            name,
            &PatchParams::apply(METADATA_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Gone (or replaced by a resource of another uid) in the meantime.
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
        Err(e) => Err(Error::kube("apply the finalizer")(e)),
    }
}
