//! The CLI's endpoints besides submit (submit.rs): list and get objects
//! with their status, an object's tree, cancel.

use crate::body::Json;
use crate::error::ApiError;
use crate::state::{AppStateRef, blocking};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kontinuum_api::endpoints::{
    LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, ListMeta, ObjectList, ObjectMeta, ObjectView, codes,
};
use kontinuum_engine::ObjectStatus;
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    kind: Option<String>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// One page of objects with their statuses. Pages keep answers (and the
/// memory to build them) small: 50,000 tasks were 15.5 MiB in one answer.
/// The token is the last name of the page; names never change, so a page
/// after objects were added or finished still continues in order.
pub(crate) async fn list(
    State(state): State<AppStateRef>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ObjectList>, ApiError> {
    let Query(query) = query.map_err(|e| {
        let text = e.body_text();
        let field = query_field(&text).to_string();
        ApiError::bad_field(field, text)
    })?;
    let prefix = match query.kind.as_deref() {
        None => String::new(),
        Some(kind) => format!("{}/", engine_kind(kind)?),
    };
    let limit = query.limit.unwrap_or(LIST_DEFAULT_LIMIT);
    if !(1..=LIST_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_field(
            "limit",
            format!("must be 1..={LIST_MAX_LIMIT} (found {limit})"),
        ));
    }
    if let Some(token) = &query.continue_token
        && !token.starts_with(&prefix)
    {
        return Err(ApiError::bad_field(
            "continue",
            "this token belongs to another listing: send the same kind as the request that gave it",
        ));
    }
    let (items, next) = blocking(&state.engine, move |e| {
        let (names, more) = e.objects_page(&prefix, query.continue_token.as_deref(), limit)?;
        let mut items = Vec::with_capacity(names.len());
        for name in &names {
            items.push(view(name, e.status(name)?));
        }
        Ok((items, more.then(|| names.last().cloned()).flatten()))
    })
    .await?;
    Ok(Json(ObjectList {
        api_version: "v1".into(),
        kind: "List".into(),
        metadata: ListMeta {
            continue_token: next,
        },
        items,
    }))
}

/// The parameter a query-string error names (serde says "field `kind`"),
/// or `query` when it names none.
fn query_field(message: &str) -> &str {
    message
        .split_once("field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map_or("query", |(field, _)| field)
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
