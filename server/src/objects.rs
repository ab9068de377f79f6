//! The CLI's endpoints: submit manifests, list and get objects with their
//! status, an object's tree, cancel. Manifests are validated here with the same layer as
//! `kontinuum run`, whatever the client did before.

use crate::body::Json;
use crate::error::ApiError;
use crate::server::AppStateRef;
use crate::worker_api::{blocking, blocking_api};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kontinuum_api::endpoints::{
    ObjectList, ObjectMeta, ObjectView, Problem, SubmitRequest, SubmitResponse, codes,
};
use kontinuum_api::validate::{Manifest, validate};
use kontinuum_engine::{ObjectStatus, Submission};
use serde::Deserialize;
use serde_json::Value;

pub(crate) async fn submit(
    State(state): State<AppStateRef>,
    Json(req): Json<SubmitRequest>,
) -> Result<(StatusCode, Json<SubmitResponse>), ApiError> {
    if req.objects.is_empty() {
        return Err(ApiError::bad_field("objects", "no objects to submit"));
    }
    // Validating megabytes of manifest is CPU work: off the async threads.
    let names = blocking_api(&state.engine, move |engine| {
        let (names, submissions) = plan(&req.objects)?;
        let count = submissions.len();
        engine.submit(submissions)?;
        tracing::info!(objects = count, "accepted a submission");
        Ok(names)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(SubmitResponse { names })))
}

/// Validates every document; all problems, or the engine's submissions.
fn plan(objects: &[Value]) -> Result<(Vec<String>, Vec<Submission>), ApiError> {
    let mut problems = Vec::new();
    let mut names = Vec::new();
    let mut submissions = Vec::new();
    for (index, doc) in objects.iter().enumerate() {
        let manifest = match validate(doc) {
            Ok(m) => m,
            Err(errors) => {
                problems.extend(errors.into_iter().map(|e| Problem {
                    object: index,
                    field: e.field,
                    message: e.message,
                }));
                continue;
            }
        };
        let name = manifest.name().to_string();
        match manifest {
            Manifest::Task(task) => {
                let name = format!("task/{name}");
                names.push(name.clone());
                submissions.push(Submission::Task {
                    name,
                    spec: task.spec,
                });
            }
            Manifest::Future(future) => {
                if let Some(message) = lines_problem(&future.spec) {
                    problems.push(Problem {
                        object: index,
                        field: "spec.map.source.lines.path".into(),
                        message,
                    });
                    continue;
                }
                let name = format!("future/{name}");
                names.push(name.clone());
                submissions.push(Submission::Future {
                    name,
                    spec: future.spec,
                });
            }
            // Pools are the operator's business; this server runs what any
            // connected worker leases.
            Manifest::WorkerPool(_) => names.push(format!("workerpool/{name}")),
        }
    }
    if problems.is_empty() {
        Ok((names, submissions))
    } else {
        Err(ApiError::invalid(problems))
    }
}

/// The server reads `lines` files itself, so their paths are the server's.
fn lines_problem(spec: &kontinuum_api::HierarchicalFutureSpec) -> Option<String> {
    let lines = spec.map.as_ref()?.source.lines.as_ref()?;
    let path = std::path::Path::new(&lines.path);
    if !path.is_absolute() {
        return Some(format!(
            "must be an absolute path on the server (found \"{}\")",
            lines.path
        ));
    }
    if !path.is_file() {
        return Some(format!("no such file on the server: {}", lines.path));
    }
    None
}

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    kind: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppStateRef>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ObjectList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_field("kind", e.body_text()))?;
    let prefix = match query.kind.as_deref() {
        None => None,
        Some(kind) => Some(format!("{}/", engine_kind(kind)?)),
    };
    let items = blocking(&state.engine, move |e| {
        let mut items = Vec::new();
        for name in e.objects()? {
            if prefix.as_ref().is_some_and(|p| !name.starts_with(p)) {
                continue;
            }
            let status = e.status(&name)?;
            items.push(view(&name, status));
        }
        Ok(items)
    })
    .await?;
    Ok(Json(ObjectList {
        api_version: "v1".into(),
        kind: "List".into(),
        items,
    }))
}

pub(crate) async fn get(
    State(state): State<AppStateRef>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ObjectView>, ApiError> {
    let key = object_key(path)?;
    let status = blocking(&state.engine, move |e| {
        let status = e.status(&key)?;
        Ok(view(&key, status))
    })
    .await?;
    Ok(Json(status))
}

pub(crate) async fn cancel(
    State(state): State<AppStateRef>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<ObjectView>, ApiError> {
    let key = object_key(path)?;
    let status = blocking(&state.engine, move |e| {
        e.cancel(&key)?;
        let status = e.status(&key)?;
        Ok(view(&key, status))
    })
    .await?;
    tracing::info!(object = %status.metadata.name, "cancelled");
    Ok(Json(status))
}

/// Nodes a tree answer holds unless `maxNodes` says otherwise, and at most.
const TREE_NODES: usize = 1000;
const MAX_TREE_NODES: usize = 100_000;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TreeQuery {
    max_nodes: Option<usize>,
}

/// The object's tree, breadth first, cut after `maxNodes` nodes.
pub(crate) async fn tree(
    State(state): State<AppStateRef>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<TreeQuery>, QueryRejection>,
) -> Result<Json<kontinuum_engine::TreeView>, ApiError> {
    let key = object_key(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_field("maxNodes", e.body_text()))?;
    let max = query.max_nodes.unwrap_or(TREE_NODES);
    if !(1..=MAX_TREE_NODES).contains(&max) {
        return Err(ApiError::bad_field(
            "maxNodes",
            format!("must be 1..={MAX_TREE_NODES} (found {max})"),
        ));
    }
    let tree = blocking(&state.engine, move |e| e.tree(&key, max)).await?;
    Ok(Json(tree))
}

/// axum's own rejections are plain text; every answer here is JSON.
/// The engine's name (`task/NAME`, `future/NAME`) of `/objects/{kind}/{name}`.
fn object_key(path: Result<Path<(String, String)>, PathRejection>) -> Result<String, ApiError> {
    let Path((kind, name)) = path.map_err(|e| ApiError::bad_field("path", e.body_text()))?;
    Ok(format!("{}/{name}", engine_kind(&kind)?))
}

/// `task` or `future` (also the kinds' other spellings kubectl accepts).
fn engine_kind(kind: &str) -> Result<&'static str, ApiError> {
    match kind.to_ascii_lowercase().as_str() {
        "task" | "tasks" | "kt" => Ok("task"),
        "future" | "futures" | "hf" | "hierarchicalfuture" | "hierarchicalfutures" => Ok("future"),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no object kind '{kind}' (task or future)"),
        )),
    }
}

fn view(key: &str, status: ObjectStatus) -> ObjectView {
    let name = key.split_once('/').map_or(key, |(_, n)| n).to_string();
    let (kind, status) = match status {
        ObjectStatus::Task(s) => ("Task", serde_json::to_value(s)),
        ObjectStatus::Future(s) => ("HierarchicalFuture", serde_json::to_value(s)),
    };
    ObjectView {
        api_version: kontinuum_api::API_VERSION.into(),
        kind: kind.into(),
        metadata: ObjectMeta { name },
        status: status.unwrap_or_default(),
    }
}
