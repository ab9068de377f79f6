//! The endpoints workers call: register, lease (long poll), heartbeat,
//! complete, split, children, spawn. Engine calls block (locks, group
//! commit), so each runs on tokio's blocking pool.

use crate::auth::Caller;
use crate::body::Json;
use crate::error::ApiError;
use crate::state::{AppStateRef, WorkerRecord, blocking, check_leases};
use axum::Extension;
use axum::extract::State;
use kontinuum_api::endpoints::{
    ChildRequest, CompleteRequest, CompleteResponse, HeartbeatRequest, HeartbeatResponse,
    LeaseRequest, LeaseResponse, MAX_BATCH, MAX_BODY_BYTES, MAX_LEASE_WAIT_MS, NodeResponse,
    RegisterRequest, RegisterResponse, ReleaseRequest, SpawnRequest, SplitRequest, SplitResponse,
    WorkerList, WorkerView,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often a long poll looks up from the engine to see whether the
/// server is stopping or its client has gone. Work wakes it at once anyway.
const POLL_SLICE: Duration = Duration::from_millis(250);

pub(crate) async fn register(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<RegisterRequest>,
) -> Result<Json<RegisterResponse>, ApiError> {
    check_pool(&req.pool)?;
    let worker = if req.worker.trim().is_empty() {
        format!("worker-{}", state.workers.lock().len() + 1)
    } else {
        req.worker.clone()
    };
    tracing::info!(%worker, pool = %req.pool, functions = req.functions.len(), "worker registered");
    state.workers.lock().insert(
        worker.clone(),
        WorkerRecord {
            namespace: caller.namespace().map(str::to_string),
            pool: req.pool,
            functions: req.functions,
            concurrency: req.concurrency,
            last_seen: Instant::now(),
        },
    );
    Ok(Json(RegisterResponse {
        worker,
        max_batch: MAX_BATCH,
        max_lease_wait_ms: MAX_LEASE_WAIT_MS,
        max_body_bytes: MAX_BODY_BYTES,
    }))
}

/// Workers not heard from for this long are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(300);

/// Notes a lease call. A worker unknown here (it registered with a server
/// that has since restarted) is listed without its functions until it
/// registers again, which the answer asks it to: true then.
fn seen(state: &AppStateRef, caller: &Caller, worker: &str, pool: &str) -> bool {
    let now = Instant::now();
    let mut workers = state.workers.lock();
    if let Some(w) = workers.get_mut(worker) {
        w.last_seen = now;
        // Asked until it registers (a worker has at least the std functions).
        return w.functions.is_empty();
    }
    workers.retain(|_, w| now.duration_since(w.last_seen) < FORGET_AFTER);
    workers.insert(
        worker.to_string(),
        WorkerRecord {
            namespace: caller.namespace().map(str::to_string),
            pool: pool.to_string(),
            functions: Vec::new(),
            concurrency: 0,
            last_seen: now,
        },
    );
    true
}

/// The workers heard from lately; a confined caller sees its namespace's.
pub(crate) async fn workers(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
) -> Json<WorkerList> {
    let now = Instant::now();
    let running = state.engine.leases_by_worker();
    let mut workers: Vec<WorkerView> = state
        .workers
        .lock()
        .iter()
        .filter(|(_, w)| now.duration_since(w.last_seen) < FORGET_AFTER)
        .filter(|(_, w)| {
            caller.namespace().is_none() || caller.namespace() == w.namespace.as_deref()
        })
        .map(|(name, w)| WorkerView {
            worker: name.clone(),
            pool: w.pool.clone(),
            functions: w.functions.clone(),
            concurrency: w.concurrency,
            idle_ms: now.duration_since(w.last_seen).as_millis() as u64,
            namespace: w.namespace.clone(),
            running: running.get(name).copied().unwrap_or(0),
        })
        .collect();
    workers.sort_by(|a, b| a.worker.cmp(&b.worker));
    Json(WorkerList { workers })
}

fn check_pool(pool: &str) -> Result<(), ApiError> {
    if pool.is_empty() {
        return Err(ApiError::bad_field(
            "pool",
            "must not be empty (\"*\" = any pool)",
        ));
    }
    Ok(())
}

/// Set when the handler's future is dropped (the client went away), so the
/// blocking long poll stops taking leases nobody will receive.
struct Gone(Arc<AtomicBool>);

impl Drop for Gone {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

pub(crate) async fn lease(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<LeaseRequest>,
) -> Result<Json<LeaseResponse>, ApiError> {
    check_pool(&req.pool)?;
    if req.max == 0 || req.max > MAX_BATCH {
        return Err(ApiError::bad_field(
            "max",
            format!("must be 1..={MAX_BATCH}"),
        ));
    }
    let register = seen(&state, &caller, &req.worker, &req.pool);
    // A worker with the shared token serves its pool in every namespace; one
    // with a ServiceAccount token, its own namespace's pool only.
    let namespace = caller.namespace().map(str::to_string);
    let wait = Duration::from_millis(req.wait_ms.min(MAX_LEASE_WAIT_MS));
    let gone = Arc::new(AtomicBool::new(false));
    let _guard = Gone(gone.clone());
    let app = state.clone();
    let leases = blocking(&state.engine, move |engine| {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = left.min(POLL_SLICE);
            let ns = namespace.as_deref();
            let leases = engine.lease(&req.pool, ns, &req.worker, req.max, wait)?;
            if !leases.is_empty() && gone.load(Ordering::SeqCst) {
                // Nobody will receive these: back to the queue at once
                // rather than after their leases expire.
                engine.release(leases.iter().map(|l| l.token).collect())?;
                return Ok(Vec::new());
            }
            let stop = app.stopping.load(Ordering::SeqCst) || gone.load(Ordering::SeqCst);
            if !leases.is_empty() || left <= POLL_SLICE || stop {
                return Ok(leases);
            }
        }
    })
    .await?;
    Ok(Json(LeaseResponse { leases, register }))
}

pub(crate) async fn heartbeat(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<HeartbeatRequest>,
) -> Result<Json<HeartbeatResponse>, ApiError> {
    check_leases(&state, &caller, vec![req.token]).await?;
    let reply = blocking(&state.engine, move |e| e.heartbeat(req.token, req.progress)).await?;
    Ok(Json(reply))
}

pub(crate) async fn complete(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<CompleteRequest>,
) -> Result<Json<CompleteResponse>, ApiError> {
    if req.completions.len() > MAX_BATCH {
        return Err(ApiError::bad_field(
            "completions",
            format!("at most {MAX_BATCH} per call"),
        ));
    }
    // All or nothing: one foreign token refuses the whole batch.
    check_leases(
        &state,
        &caller,
        req.completions.iter().map(|c| c.token).collect(),
    )
    .await?;
    let acks = blocking(&state.engine, move |e| e.complete(req.completions)).await?;
    Ok(Json(CompleteResponse { acks }))
}

/// Leases a stopping worker hands back; answered like complete.
pub(crate) async fn release(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<ReleaseRequest>,
) -> Result<Json<CompleteResponse>, ApiError> {
    if req.tokens.len() > MAX_BATCH {
        return Err(ApiError::bad_field(
            "tokens",
            format!("at most {MAX_BATCH} per call"),
        ));
    }
    check_leases(&state, &caller, req.tokens.clone()).await?;
    let acks = blocking(&state.engine, move |e| e.release(req.tokens)).await?;
    Ok(Json(CompleteResponse { acks }))
}

pub(crate) async fn split(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<SplitRequest>,
) -> Result<Json<SplitResponse>, ApiError> {
    check_leases(&state, &caller, vec![req.token]).await?;
    let accepted = blocking(&state.engine, move |e| e.split(req.token, req.at)).await?;
    Ok(Json(SplitResponse { accepted }))
}

pub(crate) async fn add_child(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<ChildRequest>,
) -> Result<Json<NodeResponse>, ApiError> {
    check_leases(&state, &caller, vec![req.token]).await?;
    kontinuum_api::validate::check_fnref(&req.call, "call")
        .map_err(|e| ApiError::bad_field(e.field, e.message))?;
    let node = blocking(&state.engine, move |e| {
        e.add_child(req.token, req.call, req.weight)
    })
    .await?;
    Ok(Json(NodeResponse { node }))
}

pub(crate) async fn spawn(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    Json(req): Json<SpawnRequest>,
) -> Result<Json<NodeResponse>, ApiError> {
    check_leases(&state, &caller, vec![req.token]).await?;
    kontinuum_api::validate::check_fnref(&req.spec.call, "spec.call")
        .map_err(|e| ApiError::bad_field(e.field, e.message))?;
    let node = blocking(&state.engine, move |e| e.spawn(req.token, req.spec)).await?;
    Ok(Json(NodeResponse { node }))
}
