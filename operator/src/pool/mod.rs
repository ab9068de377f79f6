//! The WorkerPool controller: one Deployment per pool, its replicas set
//! from the pool's queue (or from `spec.replicas`), and the pool's status.
//! This reconciler is the only writer of WorkerPool status.

pub mod cost;
pub mod deployment;
pub mod inject;
pub mod scale;
#[cfg(test)]
mod scripted;
pub mod settling;

use crate::error::Error;
use crate::metrics::Metrics;
use deployment::{WorkerSettings, deployment_name, selector};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kontinuum_api::WorkerPool;
use kontinuum_engine::Engine;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Api, Client, ResourceExt};
use parking_lot::Mutex;
use scale::{Demand, ScaleMemory, Scaling};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

const FIELD_MANAGER: &str = "kontinuum-operator";

pub struct PoolContext {
    pub client: Client,
    pub engine: Engine,
    pub settings: WorkerSettings,
    pub metrics: Arc<Metrics>,
    /// The workers connected to the worker API, for the status.
    pub roster: kontinuum_server::Roster,
    /// Futures about to be submitted, counted for their pool's demand.
    pub settling: Arc<settling::Settling>,
    /// The scaler's memory per (namespace, pool).
    pub memory: Mutex<HashMap<(String, String), ScaleMemory>>,
    /// Failed reconciles in a row, per pool (see [`crate::backoff`]).
    pub backoff: crate::backoff::Backoff,
}

fn now_ms() -> u64 {
    crate::wall_ms()
}

/// The pool's scaling settings, defaults filled in (None: fixed replicas).
pub fn scaling_of(pool: &WorkerPool) -> Option<Scaling> {
    let s = pool.spec.scaling.as_ref()?;
    let d = Scaling::default();
    Some(Scaling {
        min: s.min_replicas.unwrap_or(d.min),
        max: s.max_replicas.unwrap_or(d.max),
        target_per_replica: s.target_per_replica.unwrap_or(d.target_per_replica),
        scale_down_delay: s
            .scale_down_delay
            .as_deref()
            .and_then(|t| kontinuum_api::duration::parse_duration(t).ok())
            .unwrap_or(d.scale_down_delay),
    })
}

/// The pool's name in logs and in the backoff's memory.
fn object_name(pool: &WorkerPool) -> String {
    format!(
        "{}/workerpool/{}",
        pool.namespace().unwrap_or_default(),
        pool.name_any()
    )
}

pub async fn reconcile(pool: Arc<WorkerPool>, ctx: Arc<PoolContext>) -> Result<Action, Error> {
    let object = object_name(&pool);
    let run = reconcile_inner(&pool, &ctx);
    ctx.backoff
        .reconcile(&ctx.metrics, "workerpool", &object, run)
        .await
}

pub fn error_policy(pool: Arc<WorkerPool>, error: &Error, ctx: Arc<PoolContext>) -> Action {
    let object = object_name(&pool);
    ctx.backoff
        .after_failure(&ctx.metrics, "workerpool", &object, error)
}

async fn reconcile_inner(pool: &WorkerPool, ctx: &PoolContext) -> Result<Action, Error> {
    let (Some(namespace), name, Some(uid)) = (pool.namespace(), pool.name_any(), pool.uid()) else {
        return Err(Error::Invalid("WorkerPool without namespace or uid".into()));
    };
    if pool.metadata.deletion_timestamp.is_some() {
        // The Deployment goes with it (ownerReference); nothing else to do.
        ctx.memory.lock().remove(&(namespace.clone(), name.clone()));
        return Ok(Action::await_change());
    }
    let engine = ctx.engine.clone();
    let (ns, pool_name) = (namespace.clone(), name.clone());
    let stats = tokio::task::spawn_blocking(move || engine.pool_stats(&ns, &pool_name)).await?;
    let demand = Demand {
        queued: stats
            .queued_tasks
            .saturating_add(ctx.settling.tasks(&namespace, &name)),
        running: stats.running,
        due: stats.delayed_due,
    };
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let now = now_ms();
    let key = (namespace.clone(), name.clone());
    let (replicas, scale_down_at) = match scaling_of(pool) {
        Some(s) => {
            let known = ctx.memory.lock().get(&key).cloned();
            let memory = match known {
                Some(m) => m,
                None => resumed(pool, &deployments, &name, now).await?,
            };
            let (m, d) = scale::decide(memory, demand, &s, now);
            ctx.memory.lock().insert(key, m);
            (d.replicas, d.wake_at_ms)
        }
        None => {
            ctx.memory.lock().remove(&key);
            (pool.spec.replicas.unwrap_or(1), None)
        }
    };
    let template = pool
        .spec
        .template
        .as_ref()
        .and_then(|t| serde_json::to_value(t).ok());
    let worker = pool.spec.worker.clone().unwrap_or_default();
    let body = deployment::desired(
        &deployment::PoolShape {
            name: &name,
            uid: &uid,
            template: template.as_ref(),
            concurrency: pool.spec.concurrency.unwrap_or(8),
            replicas,
            worker: &worker,
        },
        &ctx.settings,
    );
    // The status holds the replicas last applied: no read of the Deployment
    // to know that this is a scale-down.
    let applied_before = pool.status.as_ref().map(|s| s.desired_replicas);
    if applied_before.is_some_and(|before| replicas < before) {
        mark_busy_pods(ctx, &namespace, &name).await?;
    }
    let applied = deployments
        .patch(
            &deployment_name(&name),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await;
    let (deployment, apply_error) = match applied {
        Ok(d) => (Some(d), None),
        Err(kube::Error::Api(s)) if refused(&s) => (
            deployments
                .get_opt(&deployment_name(&name))
                .await
                .ok()
                .flatten(),
            Some(s.message),
        ),
        Err(e) => return Err(Error::kube("apply the worker Deployment")(e)),
    };
    let connected = ctx.roster.pool(&namespace, &name);
    let status = pool_status(
        pool,
        &name,
        replicas,
        &Seen {
            stats: &stats,
            demand: demand.total(),
            scale_down_at,
            connected: &connected,
            deployment: deployment.as_ref(),
            apply_error: apply_error.as_deref(),
        },
        now,
    );
    let current = pool
        .status
        .as_ref()
        .and_then(|s| serde_json::to_value(s).ok());
    if current.as_ref() != Some(&status) {
        let body = json!({
            "apiVersion": kontinuum_api::API_VERSION,
            "kind": "WorkerPool",
            "metadata": {"name": name},
            "status": status,
        });
        let patched = Api::<WorkerPool>::namespaced(ctx.client.clone(), &namespace)
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&body),
            )
            .await;
        match patched {
            Ok(_) => {}
            // Deleted while this reconcile ran: its Deployment goes with it,
            // and the deletion reconciles it again.
            Err(kube::Error::Api(s)) if s.code == 404 => return Ok(Action::await_change()),
            Err(e) => return Err(Error::kube("patch the WorkerPool status")(e)),
        }
        ctx.metrics
            .status_patches
            .with_label_values(&["workerpool"])
            .inc();
    }
    // Engine changes trigger reconciles (feed.rs); the timer wakes the pool
    // when its window lets the replicas go down; the minute is only a
    // backstop should a trigger be lost, and writes nothing when unchanged.
    let wake = scale_down_at.map(|at| Duration::from_millis(at.saturating_sub(now).max(1)));
    Ok(Action::requeue(wake.unwrap_or(RESYNC).min(RESYNC)))
}

/// The scaler's memory for a pool this process has not decided for yet
/// (it has just started leading): the replicas last applied, as the pool's
/// status says, or the Deployment's if higher (a process that died between
/// applying the Deployment and writing the status). A new pool starts
/// from nothing.
async fn resumed(
    pool: &WorkerPool,
    deployments: &Api<Deployment>,
    name: &str,
    now: u64,
) -> Result<ScaleMemory, Error> {
    let Some(status) = pool.status.as_ref() else {
        return Ok(ScaleMemory::default());
    };
    let deployed = deployments
        .get_opt(&deployment_name(name))
        .await
        .map_err(Error::kube("read the worker Deployment"))?
        .and_then(|d| d.spec.replicas)
        .unwrap_or(0);
    let applied = status.desired_replicas.max(deployed);
    tracing::debug!(pool = %name, applied, "scaler resumed from the applied replicas");
    Ok(ScaleMemory::resumed(applied, now))
}

/// Annotates the pool's pods with the tasks their workers run, so that a
/// scale-down removes idle pods first (see [`cost`]).
async fn mark_busy_pods(ctx: &PoolContext, namespace: &str, pool: &str) -> Result<(), Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let listed = pods
        .list(&ListParams::default().labels(&format!("{}={pool}", deployment::POOL_LABEL)))
        .await
        .map_err(Error::kube("list the pool's pods"))?;
    let current: Vec<cost::PodCost> = listed
        .items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| cost::PodCost {
            name: p.name_any(),
            current: p.annotations().get(cost::DELETION_COST).cloned(),
        })
        .collect();
    let engine = ctx.engine.clone();
    let (ns, name) = (namespace.to_string(), pool.to_string());
    let running = tokio::task::spawn_blocking(move || engine.running_by_worker(&ns, &name)).await?;
    for (pod, value) in cost::changes(&current, &running) {
        let patch = json!({"metadata": {"annotations": {cost::DELETION_COST: value}}});
        match pods
            .patch(&pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // Gone meanwhile: nothing to protect.
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::kube("annotate a worker pod's deletion cost")(e)),
        }
    }
    Ok(())
}

/// The longest a pool goes without a look at its queue.
const RESYNC: Duration = Duration::from_secs(60);

/// The API server refused the Deployment for what it holds (it will refuse
/// it again): a 4xx, or the 500 a server-side apply answers when a field
/// does not convert (an invalid quantity such as `cpu: lots`).
fn refused(s: &kube::core::Status) -> bool {
    (400..500).contains(&s.code)
        || (s.code == 500 && s.message.starts_with("failed to convert new object"))
}

/// What the reconcile read for the status.
#[derive(Clone, Copy)]
struct Seen<'a> {
    stats: &'a kontinuum_engine::PoolStats,
    /// What the scaler sized the pool on (queued tasks, running, due).
    demand: u64,
    /// While the window holds replicas the demand no longer asks for:
    /// when they may go down (ms since epoch).
    scale_down_at: Option<u64>,
    connected: &'a kontinuum_server::PoolWorkers,
    deployment: Option<&'a Deployment>,
    apply_error: Option<&'a str>,
}

/// The status the pool should show; `lastScaleTime` is kept unless the
/// replicas changed, so an unchanged pool renders byte-equal.
fn pool_status(pool: &WorkerPool, name: &str, desired: i32, seen: &Seen<'_>, now_ms: u64) -> Value {
    let Seen {
        stats,
        demand,
        scale_down_at,
        connected,
        deployment,
        apply_error,
    } = *seen;
    let previous = pool.status.as_ref();
    let (replicas, ready) = deployment
        .and_then(|d| d.status.as_ref())
        .map(|s| (s.replicas.unwrap_or(0), s.ready_replicas.unwrap_or(0)))
        .unwrap_or((0, 0));
    let last_scale = match previous {
        Some(p) if p.desired_replicas == desired => p.last_scale_time.clone(),
        _ => rfc3339(now_ms),
    };
    let condition = match apply_error {
        Some(message) => json!({
            "type": "Ready", "status": "False", "reason": "DeploymentRefused",
            "message": format!("the API server refused the worker Deployment: {message}"),
        }),
        None => json!({
            "type": "Ready",
            "status": if ready >= desired { "True" } else { "False" },
            "reason": if ready >= desired { "ReplicasReady" } else { "ScalingUp" },
            "message": format!("{ready} of {desired} replicas ready"),
        }),
    };
    let mut status = json!({
        "replicas": replicas,
        "readyReplicas": ready,
        "desiredReplicas": desired,
        "queued": stats.queued,
        "running": stats.running,
        "delayed": stats.delayed,
        "demand": demand,
        "workers": connected.workers,
        "selector": selector(name),
        "lastScaleTime": last_scale,
        "conditions": [condition],
        "observedGeneration": pool.metadata.generation,
    });
    // Bounded: a pool's workers may serve many functions.
    let functions: Vec<&String> = connected
        .functions
        .iter()
        .take(MAX_STATUS_FUNCTIONS)
        .collect();
    if !functions.is_empty() {
        status["functions"] = json!(functions);
    }
    if let Some(at) = scale_down_at.and_then(rfc3339) {
        status["scaleDownAt"] = json!(at);
    }
    status
}

/// A time for the status, to the second.
fn rfc3339(ms: u64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

/// Functions listed in a pool's status at most.
const MAX_STATUS_FUNCTIONS: usize = 64;
