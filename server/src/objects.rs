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
use kontinuum_api::{DEFAULT_NAMESPACE, ObjectId, ObjectKind};
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
        let namespace = manifest_namespace(&manifest).to_string();
        match manifest {
            Manifest::Task(task) => {
                let submission = Submission::task(&namespace, &name, task.spec);
                names.push(submission.id.to_string());
                submissions.push(submission);
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
                let submission = Submission::future(&namespace, &name, future.spec);
                names.push(submission.id.to_string());
                submissions.push(submission);
            }
            // Pools are the operator's business; this server runs what any
            // connected worker leases.
            Manifest::WorkerPool(_) => names.push(format!("{namespace}/workerpool/{name}")),
        }
    }
    if problems.is_empty() {
        Ok((names, submissions))
    } else {
        Err(ApiError::invalid(problems))
    }
}

/// metadata.namespace, or "default" as kubectl would use.
fn manifest_namespace(manifest: &Manifest) -> &str {
    let meta = match manifest {
        Manifest::Task(t) => &t.metadata,
        Manifest::Future(f) => &f.metadata,
        Manifest::WorkerPool(p) => &p.metadata,
    };
    meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
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
    namespace: Option<String>,
}

pub(crate) async fn list(
    State(state): State<AppStateRef>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ObjectList>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_field("query", e.body_text()))?;
    let kind = query.kind.as_deref().map(engine_kind).transpose()?;
    let namespace = query.namespace;
    let items = blocking(&state.engine, move |e| {
        let mut items = Vec::new();
        for id in e.objects()? {
            if kind.is_some_and(|k| k != id.kind)
                || namespace.as_ref().is_some_and(|ns| *ns != id.namespace)
            {
                continue;
            }
            let status = e.status(&id)?;
            items.push(view(&id, status));
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
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<ObjectView>, ApiError> {
    let id = object_id(path)?;
    let status = blocking(&state.engine, move |e| {
        let status = e.status(&id)?;
        Ok(view(&id, status))
    })
    .await?;
    Ok(Json(status))
}

pub(crate) async fn cancel(
    State(state): State<AppStateRef>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<ObjectView>, ApiError> {
    let id = object_id(path)?;
    let status = blocking(&state.engine, move |e| {
        e.cancel(&id)?;
        let status = e.status(&id)?;
        Ok(view(&id, status))
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
    path: Result<Path<(String, String, String)>, PathRejection>,
    query: Result<Query<TreeQuery>, QueryRejection>,
) -> Result<Json<kontinuum_engine::TreeView>, ApiError> {
    let id = object_id(path)?;
    let Query(query) = query.map_err(|e| ApiError::bad_field("maxNodes", e.body_text()))?;
    let max = query.max_nodes.unwrap_or(TREE_NODES);
    if !(1..=MAX_TREE_NODES).contains(&max) {
        return Err(ApiError::bad_field(
            "maxNodes",
            format!("must be 1..={MAX_TREE_NODES} (found {max})"),
        ));
    }
    let tree = blocking(&state.engine, move |e| e.tree(&id, max)).await?;
    Ok(Json(tree))
}

/// The object of `/objects/{namespace}/{kind}/{name}` (axum's own
/// rejections are plain text; every answer here is JSON).
fn object_id(
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<ObjectId, ApiError> {
    let Path((namespace, kind, name)) =
        path.map_err(|e| ApiError::bad_field("path", e.body_text()))?;
    Ok(ObjectId::new(namespace, engine_kind(&kind)?, name))
}

/// `task` or `future` (also the kinds' other spellings kubectl accepts).
fn engine_kind(kind: &str) -> Result<ObjectKind, ApiError> {
    kind.parse().map_err(|e: kontinuum_api::ObjectIdError| {
        ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, e.to_string())
    })
}

fn view(id: &ObjectId, status: ObjectStatus) -> ObjectView {
    let status = match status {
        ObjectStatus::Task(s) => serde_json::to_value(s),
        ObjectStatus::Future(s) => serde_json::to_value(s),
    };
    ObjectView {
        api_version: kontinuum_api::API_VERSION.into(),
        kind: id.kind.resource_kind().into(),
        metadata: ObjectMeta {
            name: id.name.clone(),
            namespace: id.namespace.clone(),
        },
        status: status.unwrap_or_default(),
    }
}
