//! From a submitted spec to the records that run it. Planning reads and
//! checks everything first (and may fail); applying only mutates, so a bad
//! submission changes nothing.

use crate::error::EngineError;
use crate::machine::{State, Tx};
use crate::policy::{self, Debounce, Exclusive};
use crate::records::{
    Body, ExclusiveSettings, MapParams, MapSourceKind, Node, NodeState, OutputTarget,
    RetrySettings, Root, RootKind, RootState,
};
use crate::store::Store;
use kontinuum_api::common::RetryPolicy;
use kontinuum_api::validate::rules;
use kontinuum_api::work::{NodeId, StoreRef};
use kontinuum_api::{FnRef, HierarchicalFutureSpec, ObjectId, TaskSpec};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn invalid(field: &str, message: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("{field}: {message}"))
}

// The checks below are the validation layer's rules (`rules::*`), called
// again because specs reach the engine from code and from the operator too:
// one rule, one wording.

fn duration_ms(field: &str, text: &Option<String>) -> Result<Option<u64>, EngineError> {
    Ok(text
        .as_deref()
        .map(|t| rules::duration_ms(field, t))
        .transpose()?)
}

fn timeout_ms(field: &str, text: &Option<String>) -> Result<Option<u64>, EngineError> {
    Ok(text
        .as_deref()
        .map(|t| rules::timeout_ms(field, t))
        .transpose()?)
}

fn retry_settings(field: &str, policy: &Option<RetryPolicy>) -> Result<RetrySettings, EngineError> {
    let mut retry = RetrySettings::default();
    let Some(p) = policy else { return Ok(retry) };
    if let Some(n) = p.max_attempts {
        retry.max_attempts = rules::max_attempts(&format!("{field}.maxAttempts"), n)?;
    }
    if let Some(b) = &p.backoff {
        if let Some(ms) = duration_ms(&format!("{field}.backoff.initial"), &b.initial)? {
            retry.initial_ms = ms;
        }
        if let Some(ms) = duration_ms(&format!("{field}.backoff.max"), &b.max)? {
            retry.max_ms = ms;
        }
        if let Some(f) = b.factor {
            retry.factor = rules::backoff_factor(&format!("{field}.backoff.factor"), f)?;
        }
    }
    Ok(retry)
}

/// Identifies a spec so that resubmitting the same one is recognised. The
/// typed spec serializes the same way every time, so its JSON is hashed as is.
pub fn spec_hash(kind: &str, spec: &impl serde::Serialize) -> String {
    let mut hasher = Sha256::new();
    hasher.update(kind.as_bytes());
    hasher.update(b":");
    // Streamed into the hash; writing to a hasher cannot fail, and a spec
    // that cannot serialise was refused long before.
    let _ = serde_json::to_writer(&mut hasher, spec);
    let mut hex = String::with_capacity(64);
    kontinuum_api::canonical::push_hex(&mut hex, &hasher.finalize());
    hex
}

pub struct TaskPlan {
    pub call: FnRef,
    pub stable_id: String,
    pub pool: String,
    pub retry: RetrySettings,
    pub timeout_ms: Option<u64>,
    pub due_ms: u64,
    pub on_success: Option<FnRef>,
    pub on_failure: Option<FnRef>,
    /// (key, initial, repeat)
    pub debounce: Option<(String, u64, u64)>,
    pub exclusive: Option<ExclusiveSettings>,
}

pub fn plan_task(spec: &TaskSpec, now_ms: u64) -> Result<TaskPlan, EngineError> {
    let delay = duration_ms("spec.delay", &spec.delay)?;
    let not_before = spec
        .not_before
        .as_deref()
        .map(|t| rules::date_time_ms("spec.notBefore", t))
        .transpose()?;
    rules::delay_or_not_before(delay.is_some(), not_before.is_some())?;
    let due_ms = match (delay, not_before) {
        (Some(d), _) => now_ms + d,
        (None, Some(t)) => t,
        (None, None) => 0,
    };
    let stable_id = spec.call.stable_id();
    let debounce = match &spec.debounce {
        Some(d) => {
            let initial = duration_ms("spec.debounce.initial", &d.initial)?.unwrap_or(0);
            let repeat = duration_ms("spec.debounce.repeat", &d.repeat)?.unwrap_or(initial);
            Some((
                d.key.clone().unwrap_or_else(|| stable_id.clone()),
                initial,
                repeat,
            ))
        }
        None => None,
    };
    let exclusive = spec.exclusive.as_ref().map(|e| ExclusiveSettings {
        key: e.key.clone().unwrap_or_else(|| stable_id.clone()),
        rerun_on_skip: e.rerun_on_skip,
    });
    Ok(TaskPlan {
        call: spec.call.clone(),
        stable_id,
        pool: spec.pool.clone(),
        retry: retry_settings("spec.retry", &spec.retry)?,
        timeout_ms: timeout_ms("spec.timeout", &spec.timeout)?,
        due_ms,
        on_success: spec.on_success.clone(),
        on_failure: spec.on_failure.clone(),
        debounce,
        exclusive,
    })
}

/// A submitted object: its id, its custom resource's uid, and the hash of
/// its spec.
pub struct Named {
    pub id: ObjectId,
    pub uid: Option<String>,
    pub spec_hash: String,
}

/// A root in `namespace` (the object's own when it has one).
fn new_root(
    id: NodeId,
    namespace: &str,
    object: Option<Named>,
    pool: &str,
    stable_id: String,
    now: u64,
) -> Root {
    match object {
        Some(o) => {
            let mut root = Root::new_task(id, None, &o.id.namespace, pool, stable_id, now);
            root.object = Some(o.id);
            root.uid = o.uid;
            root.spec_hash = Some(o.spec_hash);
            root
        }
        None => Root::new_task(id, None, namespace, pool, stable_id, now),
    }
}

/// Creates the task's tree (or merges it into another run). Returns its root id.
pub fn apply_task(
    st: &mut State,
    tx: &mut Tx,
    store: &Store,
    namespace: &str,
    object: Option<Named>,
    plan: TaskPlan,
) -> Result<NodeId, EngineError> {
    let id = st.alloc_id(tx);
    let mut root = new_root(id, namespace, object, &plan.pool, plan.stable_id, tx.now);
    root.retry = plan.retry;
    root.timeout_ms = plan.timeout_ms;
    root.on_success = plan.on_success;
    root.on_failure = plan.on_failure;
    let mut due = plan.due_ms;
    let mut state = NodeState::Queued;
    let mut merged_into = None;
    if let Some((key, initial, repeat)) = &plan.debounce {
        root.debounce_key = Some(key.clone());
        let mut ds = st.debounce_state(store, key)?;
        match policy::debounce(&ds, tx.now, *initial, *repeat) {
            Debounce::MergeInto(other) => merged_into = Some(other),
            Debounce::ScheduleAt(at) => {
                due = due.max(at);
                ds.pending = Some(id);
                st.set_debounce(tx, key, ds)?;
            }
        }
    }
    if let (None, Some(ex)) = (merged_into, &plan.exclusive) {
        root.exclusive = Some(ex.clone());
        let mut es = st.exclusive_state(store, &ex.key)?;
        match policy::exclusive(&es, ex.rerun_on_skip) {
            Exclusive::Run => es.holder = Some(id),
            Exclusive::Rerun => {
                es.rerun = Some(id);
                state = NodeState::Blocked;
            }
            Exclusive::MergeInto(other) => merged_into = Some(other),
        }
        if merged_into.is_none() {
            st.set_exclusive(tx, &ex.key, es)?;
        }
    }
    if let Some(other) = merged_into {
        root.state = root.state.to(RootState::Merged)?;
        root.merged_into = Some(other);
        root.merged_into_name = st
            .roots
            .get(&other)
            .and_then(|r| r.object.as_ref())
            .map(|o| o.name.clone());
        root.finished_ms = tx.now;
        root.debounce_key = None;
        root.exclusive = None;
        st.touch(id);
        st.count_finished(&root);
        tx.root_done(root);
        return Ok(id);
    }
    if state == NodeState::Queued && due > tx.now {
        state = NodeState::Waiting;
    }
    st.insert_root(root);
    st.insert_node(
        tx,
        Node::root_node(id, Body::Call { call: plan.call }, 1, state, due),
    )?;
    Ok(id)
}

pub struct FuturePlan {
    pub pool: String,
    pub output: Option<OutputTarget>,
    pub body: Body,
    pub weight: u64,
    pub declared_total: Option<u64>,
    pub retry: RetrySettings,
    pub timeout_ms: Option<u64>,
    pub deadline_ms: Option<u64>,
    pub on_success: Option<FnRef>,
    pub on_failure: Option<FnRef>,
    pub max_failed_children: u64,
    pub map: Option<MapParams>,
    pub items: Option<Vec<Value>>,
    pub stable_id: String,
}

/// A file is read by the workers, never here: its path must only be one
/// a worker can resolve the same way wherever it runs.
fn lines_path(path: &str) -> Result<(), EngineError> {
    if std::path::Path::new(path).is_absolute() {
        return Ok(());
    }
    Err(invalid(
        "spec.map.source.lines.path",
        format!("'{path}' must be absolute by the time it reaches the engine"),
    ))
}

/// The store an `s3://BUCKET/KEY` url names (checked by the caller), and
/// the key or prefix after the bucket.
fn store_and_key(
    url: &str,
    endpoint: &Option<String>,
    region: &Option<String>,
) -> (StoreRef, String) {
    let rest = url.trim_start_matches("s3://");
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    let store = StoreRef {
        bucket: bucket.to_string(),
        endpoint: endpoint.clone(),
        region: region.clone(),
    };
    (store, key.to_string())
}

/// Where spec.output writes.
fn output_target(o: &kontinuum_api::future::OutputSpec) -> Result<OutputTarget, EngineError> {
    rules::output_url(&o.url)?;
    if let Some(endpoint) = &o.endpoint {
        rules::output_endpoint(endpoint)?;
    }
    let (store, key) = store_and_key(&o.url, &o.endpoint, &o.region);
    Ok(OutputTarget { store, key })
}

/// An objects source as the engine keeps it: the store, and the key or
/// prefix after the bucket.
fn objects_source(o: &kontinuum_api::future::ObjectsSource) -> Result<MapSourceKind, EngineError> {
    rules::objects_url(&o.url)?;
    if let Some(endpoint) = &o.endpoint {
        rules::objects_endpoint(endpoint)?;
    }
    let (store, key) = store_and_key(&o.url, &o.endpoint, &o.region);
    Ok(MapSourceKind::Objects {
        store,
        key,
        lines: o.read.unwrap_or_default() == kontinuum_api::future::ObjectsRead::Lines,
    })
}

/// Items per map leaf when the spec does not say.
const DEFAULT_SHARD_SIZE: u64 = 1000;

/// The tasks a future will put in its pool's queue once submitted, as the
/// pool counts them ([`crate::PoolStats::queued_tasks`]): a map of `range`
/// or `items` its leaves, a `parallel` its calls, anything else one (a map
/// of `lines` or `objects` is one plan until a worker sizes it). Reads the
/// spec only, so a scaler may count a future before it is submitted.
pub fn tasks_ahead(spec: &HierarchicalFutureSpec) -> u64 {
    if let Some(m) = &spec.map {
        let shard = m.shard_size.unwrap_or(DEFAULT_SHARD_SIZE).max(1);
        let units = match (&m.source.range, &m.source.items) {
            (Some(r), _) => r.end.abs_diff(r.start),
            (None, Some(list)) => list.len() as u64,
            (None, None) => 0,
        };
        return units.div_ceil(shard).max(1);
    }
    spec.parallel
        .as_ref()
        .map_or(1, |calls| (calls.len() as u64).max(1))
}

pub fn plan_future(spec: &HierarchicalFutureSpec, now_ms: u64) -> Result<FuturePlan, EngineError> {
    let bodies = [
        spec.map.is_some(),
        spec.call.is_some(),
        spec.parallel.is_some(),
        spec.sequence.is_some(),
    ];
    rules::one_body(bodies.iter().filter(|b| **b).count())?;
    let mut map = None;
    let mut items = None;
    let mut stable_id = String::new();
    let (body, units) = if let Some(m) = &spec.map {
        let shard = rules::shard_size(m.shard_size.unwrap_or(DEFAULT_SHARD_SIZE))?;
        let fanout = rules::fanout(m.fanout.unwrap_or(8))?;
        let sources = &m.source;
        let (source, units, shard_units) = match (
            &sources.range,
            &sources.items,
            &sources.lines,
            &sources.objects,
        ) {
            (Some(r), None, None, None) => {
                rules::range_end(r.start, r.end)?;
                (
                    MapSourceKind::Range { start: r.start },
                    r.end.abs_diff(r.start),
                    shard,
                )
            }
            (None, Some(list), None, None) => {
                items = Some(list.clone());
                (MapSourceKind::Items, list.len() as u64, shard)
            }
            (None, None, None, Some(o)) => (objects_source(o)?, 0, 0),
            (None, None, Some(l), None) => {
                lines_path(&l.path)?;
                // Sized by a worker's plan (machine/planning.rs).
                (
                    MapSourceKind::Lines {
                        path: l.path.clone(),
                    },
                    0,
                    0,
                )
            }
            _ => return Err(rules::not_one_map_source().into()),
        };
        stable_id = m.function.stable_id();
        let plan_first = matches!(
            source,
            MapSourceKind::Lines { .. } | MapSourceKind::Objects { .. }
        );
        map = Some(MapParams {
            function: m.function.clone(),
            reducer: m.reduce.clone().unwrap_or_default(),
            shard_units,
            fanout,
            source,
        });
        let body = if plan_first {
            Body::Plan { shard }
        } else if units <= shard_units {
            Body::Leaf {
                start: 0,
                end: units,
            }
        } else {
            Body::Split {
                start: 0,
                end: units,
            }
        };
        (body, units)
    } else if let Some(call) = &spec.call {
        stable_id = call.stable_id();
        (Body::Call { call: call.clone() }, 1)
    } else if let Some(calls) = &spec.parallel {
        (
            Body::Parallel {
                calls: calls.clone(),
            },
            calls.len() as u64,
        )
    } else if let Some(calls) = &spec.sequence {
        (
            Body::Sequence {
                calls: calls.clone(),
            },
            calls.len() as u64,
        )
    } else {
        return Err(rules::not_one_body().into());
    };
    if stable_id.is_empty() {
        stable_id = format!(
            "sha256:{}",
            spec_hash("body", &spec.parallel.as_ref().or(spec.sequence.as_ref()))
        );
    }
    let deadline_ms = duration_ms("spec.deadline", &spec.deadline)?.map(|d| now_ms + d);
    let output = spec.output.as_ref().map(output_target).transpose()?;
    Ok(FuturePlan {
        pool: spec.pool.clone(),
        output,
        weight: units,
        // A map's total is its item count; otherwise a declared weight fixes it.
        declared_total: if map.is_some() {
            Some(units)
        } else {
            spec.weight
        },
        body,
        retry: retry_settings("spec.retry", &spec.retry)?,
        timeout_ms: timeout_ms("spec.timeout", &spec.timeout)?,
        deadline_ms,
        on_success: spec.on_success.clone(),
        on_failure: spec.on_failure.clone(),
        max_failed_children: spec
            .failure_policy
            .as_ref()
            .map_or(0, |f| f.max_failed_children),
        map,
        items,
        stable_id,
    })
}

pub fn apply_future(
    st: &mut State,
    tx: &mut Tx,
    object: Named,
    plan: FuturePlan,
) -> Result<NodeId, EngineError> {
    let id = st.alloc_id(tx);
    let namespace = object.id.namespace.clone();
    let mut root = new_root(
        id,
        &namespace,
        Some(object),
        &plan.pool,
        plan.stable_id,
        tx.now,
    );
    root.retry = plan.retry;
    root.timeout_ms = plan.timeout_ms;
    root.kind = RootKind::Future;
    root.deadline_ms = plan.deadline_ms;
    root.on_success = plan.on_success;
    root.on_failure = plan.on_failure;
    root.max_failed_children = plan.max_failed_children;
    root.map = plan.map;
    root.output = plan.output;
    root.declared_total = plan.declared_total;
    // Parallel and sequence roots only gather: their children carry the units.
    root.known_total = if matches!(plan.body, Body::Call { .. }) {
        1
    } else {
        plan.weight
    };
    if let Some(items) = plan.items {
        tx.writes.put_items(id, &items)?;
        st.items.insert(id, std::sync::Arc::new(items));
    }
    st.insert_root(root);
    st.insert_node(
        tx,
        Node::root_node(id, plan.body, plan.weight, NodeState::Queued, 0),
    )?;
    Ok(id)
}
