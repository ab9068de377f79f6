//! The one validation layer for manifests, agreeing with the CRD rules.
//!
//! `kontinuum run` (and anything else that accepts a manifest without the API
//! server) calls [`validate`] on each parsed YAML document. It reports every
//! problem it finds, each with the field it concerns (`spec.map.shardSize`,
//! `spec.parallel[1].args`) and a message that uses the same words as the API
//! server would. As with the API server, a message about one field's value
//! does not repeat the field (`should be greater than or equal to 1 (found
//! 0)`), while the CEL rules' sentences and unknown-field messages name it;
//! [`FieldError`]'s `Display` gives `field: message` or the sentence alone.
//!
//! One file per mechanism:
//!
//! - `kind.rs`: the envelope: `apiVersion`, `kind` (with suggestions for the
//!   names people write) and `metadata` (object names in the API server's
//!   words); each kind's CRD schema of `spec`.
//! - `schema_walk.rs`: the structural checks, read from the CRD schema
//!   itself (the `openAPIV3Schema` that [`crate::crds`] generates): unknown
//!   fields, types, required fields, minimums, patterns (durations, function
//!   names), `date-time` formats, minimum lengths and property counts. So a
//!   constraint added to a type's schema is checked here without further
//!   code, and the two cannot drift; a test fails if the schema uses a
//!   keyword the walker does not understand.
//! - `rules.rs`: the twin of each CEL rule (`x-kubernetes-validations`),
//!   whose message is the same [`crate::messages`] constant the derive
//!   attribute uses (a test fails if the CRD carries a CEL message without a
//!   twin); the rules the API server cannot express (CEL cannot see untyped
//!   fields such as FnRef arguments or a reducer): arguments bound where the
//!   engine will bind them (`result`, `error`, `item`, `previous`, `acc`,
//!   `value`), and the reducer. Each rule is also a public function on typed
//!   values ([`rules::max_attempts`], [`rules::one_body`], ...), which the
//!   engine's own checks call, so that a rule has one wording.
//! - `suggest.rs`: unknown fields, with "did you mean" suggestions.
//! - `field.rs`: [`FieldError`] and the helpers that name fields and quote
//!   values.
//!
//! Within the folder each module uses only those after it in this list:
//! `mod.rs` (this file: [`validate`], [`Manifest`]), `rules`, `kind`,
//! `schema_walk`, `suggest`, `field`. Below them all sit the types,
//! [`crate::messages`], [`crate::limits`] and [`crate::duration`].
//!
//! `status` in a manifest is ignored, as `kubectl apply` ignores it for
//! resources with a status subresource.

mod field;
mod kind;
pub mod rules;
mod schema_walk;
mod suggest;
#[cfg(test)]
mod tests;

use crate::future::{HierarchicalFuture, HierarchicalFutureSpec};
use crate::task::{Task, TaskSpec};
use crate::workerpool::{WorkerPool, WorkerPoolSpec};
use field::{join_serde_path, overlaps, type_phrase};
use kind::{Kind, TOP_LEVEL_FIELDS, check_api_version, check_kind, check_metadata};
use rules::{future_rules, task_rules, timeout_rule, worker_pool_rules};
use schema_walk::walk;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use suggest::unknown_fields;

pub use crate::messages::is_function_name;
pub use field::FieldError;
pub use kind::dns1123_subdomain_problem;
pub use rules::check_fnref;

// The shared words live in a leaf module that the types use too; they are
// named here as well for callers that reach them through the validator.
pub use crate::messages::{
    CEL_MESSAGES, DNS1123_SUBDOMAIN_MESSAGE, FUNCTION_NAME_PATTERN, FUTURE_ONE_BODY,
    MAP_SOURCE_ONE, RANGE_END_BEFORE_START, REDUCER_NAME_PATTERN, REQUIRED, SCALING_MIN_ABOVE_MAX,
    SPEC_IMMUTABLE, TASK_DELAY_AND_NOT_BEFORE,
};

/// A valid manifest, typed.
// One per document, moved straight into the engine: boxing buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum Manifest {
    Task(Task),
    Future(HierarchicalFuture),
    WorkerPool(WorkerPool),
}

impl Manifest {
    pub fn kind(&self) -> &'static str {
        match self {
            Manifest::Task(_) => Kind::Task.name(),
            Manifest::Future(_) => Kind::Future.name(),
            Manifest::WorkerPool(_) => Kind::WorkerPool.name(),
        }
    }

    pub fn name(&self) -> &str {
        let meta = match self {
            Manifest::Task(t) => &t.metadata,
            Manifest::Future(f) => &f.metadata,
            Manifest::WorkerPool(p) => &p.metadata,
        };
        meta.name.as_deref().unwrap_or("")
    }
}

/// Checks one manifest (a parsed YAML document) and types it; on any problem,
/// returns all problems found.
pub fn validate(doc: &Value) -> Result<Manifest, Vec<FieldError>> {
    let Some(obj) = doc.as_object() else {
        return Err(vec![FieldError::new(
            "",
            format!(
                "a manifest must be a mapping with apiVersion, kind, metadata and spec, not {}",
                type_phrase(doc)
            ),
        )]);
    };
    let schema = obj
        .get("kind")
        .and_then(Value::as_str)
        .and_then(Kind::from_name)
        .and_then(Kind::spec_schema);
    if let Some(field) = crate::limits::too_deep_field(doc, schema) {
        // Nothing else is read of a document this deep.
        return Err(vec![FieldError::new(field, crate::limits::too_deep())]);
    }
    let mut errors = Vec::new();
    unknown_fields(obj, "", &TOP_LEVEL_FIELDS, &mut errors);
    check_api_version(obj.get("apiVersion"), &mut errors);
    let kind = check_kind(obj.get("kind"), &mut errors);
    let metadata = check_metadata(obj.get("metadata"), &mut errors);

    let Some(kind) = kind else {
        return Err(errors);
    };
    let mut spec = match obj.get("spec") {
        Some(spec) => spec.clone(),
        None => {
            errors.push(FieldError::new("spec", REQUIRED));
            return Err(errors);
        }
    };
    if let Some(schema) = kind.spec_schema() {
        walk(&mut spec, schema, "spec", &mut errors);
    }
    match kind {
        Kind::Task => task_rules(&spec, &mut errors),
        Kind::Future => future_rules(&spec, &mut errors),
        Kind::WorkerPool => worker_pool_rules(&spec, &mut errors),
    }

    let manifest = match kind {
        Kind::Task => typed::<TaskSpec>(spec, &mut errors).map(|spec| {
            let mut task = Task::new("", spec);
            task.metadata = metadata.clone().unwrap_or_default();
            Manifest::Task(task)
        }),
        Kind::Future => typed::<HierarchicalFutureSpec>(spec, &mut errors).map(|spec| {
            let mut future = HierarchicalFuture::new("", spec);
            future.metadata = metadata.clone().unwrap_or_default();
            Manifest::Future(future)
        }),
        Kind::WorkerPool => typed::<WorkerPoolSpec>(spec, &mut errors).map(|spec| {
            let mut pool = WorkerPool::new("", spec);
            pool.metadata = metadata.clone().unwrap_or_default();
            Manifest::WorkerPool(pool)
        }),
    };
    for (field, message) in crate::limits::number_problems(doc) {
        if !errors.iter().any(|known| overlaps(&known.field, &field)) {
            errors.push(FieldError::new(field, message));
        }
    }
    match manifest {
        Some(manifest) if errors.is_empty() && metadata.is_some() => Ok(manifest),
        _ => Err(errors),
    }
}

/// Deserializes the spec; a serde error is reported unless a problem at (or
/// around) the same field was already reported.
fn typed<T: DeserializeOwned>(spec: Value, errors: &mut Vec<FieldError>) -> Option<T> {
    match serde_path_to_error::deserialize::<_, T>(spec) {
        Ok(spec) => Some(spec),
        Err(e) => {
            let field = join_serde_path("spec", &e.path().to_string());
            if !errors.iter().any(|known| overlaps(&known.field, &field)) {
                errors.push(FieldError::new(field, e.inner().to_string()));
            }
            None
        }
    }
}

/// The checks on a spec's values that the engine repeats on what it is
/// handed without this layer (the operator's resources, tasks spawned from
/// code): nesting (counted as in a document, whose top mapping holds
/// `spec`), numbers, and the shortest timeout. `kind` is `Task` or
/// `HierarchicalFuture`.
pub fn spec_value_problems(kind: &str, spec: Value) -> Vec<FieldError> {
    let schema = Kind::from_name(kind).and_then(Kind::spec_schema);
    let mut doc = Map::new();
    doc.insert("spec".into(), spec);
    let doc = Value::Object(doc);
    if let Some(field) = crate::limits::too_deep_field(&doc, schema) {
        return vec![FieldError::new(field, crate::limits::too_deep())];
    }
    let mut errors: Vec<FieldError> = crate::limits::number_problems(&doc)
        .into_iter()
        .map(|(field, message)| FieldError::new(field, message))
        .collect();
    timeout_rule(&doc["spec"], &mut errors);
    errors
}
