//! The CLI's endpoints besides submit (submit.rs): list and get objects
//! with their status, an object's tree, cancel.

use crate::auth::{Caller, outside};
use crate::body::Json;
use crate::error::ApiError;
use crate::state::{AppStateRef, blocking};
use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kontinuum_api::endpoints::{
    LIST_DEFAULT_LIMIT, LIST_MAX_LIMIT, ListMeta, ObjectList, ObjectMeta, ObjectView, ResultView,
    codes,
};
use kontinuum_api::{ObjectId, ObjectKind};
use kontinuum_engine::ObjectStatus;
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    kind: Option<String>,
    namespace: Option<String>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}

/// One page of objects with their statuses. Pages keep answers (and the
/// memory to build them) small: 50,000 tasks were 15.5 MiB in one answer.
/// The token is the last id of the page; ids never change, so a page
/// after objects were added or finished still continues in order.
pub(crate) async fn list(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ObjectList>, ApiError> {
    let Query(mut query) = query.map_err(|e| {
        let text = e.body_text();
        let field = query_field(&text).to_string();
        ApiError::bad_field(field, text)
    })?;
    // A confined caller lists its own namespace, whatever it asked.
    if let Some(own) = caller.namespace() {
        match &query.namespace {
            Some(asked) if asked != own => {
                return Err(ApiError::forbidden(outside(&caller, "that namespace")));
            }
            _ => query.namespace = Some(own.to_string()),
        }
    }
    let kind = query.kind.as_deref().map(engine_kind).transpose()?;
    // Ids are NAMESPACE/KIND/NAME: a namespace (with its kind) is a prefix.
    let prefix = match (&query.namespace, kind) {
        (None, _) => String::new(),
        (Some(ns), None) => format!("{ns}/"),
        (Some(ns), Some(kind)) => format!("{ns}/{kind}/"),
    };
    let limit = query.limit.unwrap_or(LIST_DEFAULT_LIMIT);
    if !(1..=LIST_MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_field(
            "limit",
            format!("must be 1..={LIST_MAX_LIMIT} (found {limit})"),
        ));
    }
    let after = match &query.continue_token {
        None => None,
        Some(token) => Some(continue_after(token, &prefix, kind)?),
    };
    let (items, next) = blocking(&state.engine, move |e| {
        let (ids, more) = e.objects_page(&prefix, kind, after.as_ref(), limit)?;
        let mut items = Vec::with_capacity(ids.len());
        for id in &ids {
            items.push(view(id, e.status(id)?));
        }
        let next = more.then(|| ids.last().map(ToString::to_string)).flatten();
        Ok((items, next))
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

/// The object a `continue` token names, if it belongs to this listing.
fn continue_after(
    token: &str,
    prefix: &str,
    kind: Option<ObjectKind>,
) -> Result<ObjectId, ApiError> {
    let foreign = || {
        ApiError::bad_field(
            "continue",
            "this token belongs to another listing: send the same kind and namespace as the request that gave it",
        )
    };
    let id: ObjectId = token.parse().map_err(|_| foreign())?;
    if !token.starts_with(prefix) || kind.is_some_and(|k| k != id.kind) {
        return Err(foreign());
    }
    Ok(id)
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
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<ObjectView>, ApiError> {
    let id = object_id(path, &caller)?;
    let status = blocking(&state.engine, move |e| {
        let status = e.status(&id)?;
        Ok(view(&id, status))
    })
    .await?;
    Ok(Json(status))
}

pub(crate) async fn cancel(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<ObjectView>, ApiError> {
    let id = object_id(path, &caller)?;
    let status = blocking(&state.engine, move |e| {
        e.cancel(&id)?;
        let status = e.status(&id)?;
        Ok(view(&id, status))
    })
    .await?;
    tracing::info!(object = %status.metadata.name, "cancelled");
    Ok(Json(status))
}

/// The whole result, however large (the status inlines up to 4 KiB).
pub(crate) async fn result(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<ResultView>, ApiError> {
    let id = object_id(path, &caller)?;
    let result = blocking(&state.engine, move |e| e.result(&id)).await?;
    Ok(Json(ResultView { result }))
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
    Extension(caller): Extension<Caller>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    query: Result<Query<TreeQuery>, QueryRejection>,
) -> Result<Json<kontinuum_engine::TreeView>, ApiError> {
    let id = object_id(path, &caller)?;
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
    caller: &Caller,
) -> Result<ObjectId, ApiError> {
    let Path((namespace, kind, name)) =
        path.map_err(|e| ApiError::bad_field("path", e.body_text()))?;
    // A confined caller may not even learn whether another namespace's
    // object exists: refused before the engine is asked.
    if !caller.may(&namespace) {
        return Err(ApiError::forbidden(outside(caller, "that object")));
    }
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
