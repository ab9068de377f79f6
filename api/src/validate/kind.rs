//! The envelope of a manifest: `apiVersion`, `kind` (with suggestions for
//! the names people write), `metadata` (object names in the API server's
//! words), and each kind's CRD schema of `spec`, which the walker reads.

use super::field::{FieldError, join_serde_path, overlaps, type_phrase};
use super::suggest::{closest, unknown_fields};
use crate::future::HierarchicalFuture;
use crate::messages::{DNS1123_SUBDOMAIN_MESSAGE, REQUIRED};
use crate::task::Task;
use crate::workerpool::WorkerPool;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt;
use serde_json::Value;
use std::sync::OnceLock;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Task,
    Future,
    WorkerPool,
}

impl Kind {
    pub(super) const ALL: [Kind; 3] = [Kind::Task, Kind::Future, Kind::WorkerPool];

    pub(super) fn name(self) -> &'static str {
        match self {
            Kind::Task => "Task",
            Kind::Future => "HierarchicalFuture",
            Kind::WorkerPool => "WorkerPool",
        }
    }

    /// Names people write for a kind (plural, short, kubectl's resource names).
    fn aliases(self) -> &'static [&'static str] {
        match self {
            Kind::Task => &["task", "tasks", "kt"],
            Kind::Future => &[
                "hierarchicalfuture",
                "hierarchicalfutures",
                "future",
                "futures",
                "hf",
            ],
            Kind::WorkerPool => &["workerpool", "workerpools", "wp", "pool", "pools"],
        }
    }

    pub(super) fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The `spec` schema of this kind's CRD, as JSON.
    pub(super) fn spec_schema(self) -> Option<&'static Value> {
        static SCHEMAS: OnceLock<[Option<Value>; 3]> = OnceLock::new();
        let schemas = SCHEMAS.get_or_init(|| {
            [
                spec_schema_of(serde_json::to_value(Task::crd())),
                spec_schema_of(serde_json::to_value(HierarchicalFuture::crd())),
                spec_schema_of(serde_json::to_value(WorkerPool::crd())),
            ]
        });
        let index = match self {
            Kind::Task => 0,
            Kind::Future => 1,
            Kind::WorkerPool => 2,
        };
        schemas[index].as_ref()
    }
}

fn spec_schema_of(crd: Result<Value, serde_json::Error>) -> Option<Value> {
    let crd = crd.ok()?;
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .cloned()
}

pub(super) const TOP_LEVEL_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

/// ObjectMeta's fields (what the API server's strict decoding accepts).
const METADATA_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
];

pub(super) fn check_api_version(value: Option<&Value>, errors: &mut Vec<FieldError>) {
    let want = crate::API_VERSION;
    match value {
        Some(Value::String(v)) if v == want => {}
        Some(Value::String(v)) => errors.push(FieldError::new(
            "apiVersion",
            format!("apiVersion '{v}' is not served by Kontinuum: write apiVersion: {want}"),
        )),
        Some(other) => errors.push(FieldError::new(
            "apiVersion",
            format!(
                "apiVersion must be a string, not {}: write apiVersion: {want}",
                type_phrase(other)
            ),
        )),
        None => errors.push(FieldError::new(
            "apiVersion",
            format!("apiVersion is required: write apiVersion: {want}"),
        )),
    }
}

pub(super) fn check_kind(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<Kind> {
    let kinds = "Task, HierarchicalFuture or WorkerPool";
    let found = match value {
        Some(Value::String(k)) => k,
        Some(other) => {
            errors.push(FieldError::new(
                "kind",
                format!(
                    "kind must be a string ({kinds}), not {}",
                    type_phrase(other)
                ),
            ));
            return None;
        }
        None => {
            errors.push(FieldError::new(
                "kind",
                format!("kind is required: one of {kinds}"),
            ));
            return None;
        }
    };
    if let Some(kind) = Kind::from_name(found) {
        return Some(kind);
    }
    let lower = found.to_ascii_lowercase();
    let suggestion = Kind::ALL
        .into_iter()
        .find(|k| k.aliases().contains(&lower.as_str()))
        .map(Kind::name)
        .or_else(|| closest(found, Kind::ALL.map(Kind::name)));
    let message = match suggestion {
        Some(s) => format!("kind '{found}' is not one of {kinds}: did you mean kind: {s}?"),
        None => format!("kind '{found}' is not one of {kinds}"),
    };
    errors.push(FieldError::new("kind", message));
    None
}

/// Checks metadata and types it; `None` when it is unusable.
pub(super) fn check_metadata(
    value: Option<&Value>,
    errors: &mut Vec<FieldError>,
) -> Option<ObjectMeta> {
    let obj = match value {
        Some(Value::Object(obj)) => obj,
        Some(other) => {
            errors.push(FieldError::new(
                "metadata",
                format!(
                    "metadata must be a mapping such as {{name: my-job}}, not {}",
                    type_phrase(other)
                ),
            ));
            return None;
        }
        None => {
            errors.push(FieldError::new("metadata.name", REQUIRED));
            return None;
        }
    };
    let before = errors.len();
    unknown_fields(obj, "metadata", &METADATA_FIELDS, errors);
    match obj.get("name") {
        Some(Value::String(name)) => {
            if let Some(why) = dns1123_subdomain_problem(name) {
                errors.push(FieldError::new(
                    "metadata.name",
                    format!("Invalid value: \"{name}\": {why}"),
                ));
            }
        }
        Some(other) => errors.push(FieldError::new(
            "metadata.name",
            format!("metadata.name must be a string, not {}", type_phrase(other)),
        )),
        None => errors.push(FieldError::new("metadata.name", REQUIRED)),
    }
    let meta = match serde_path_to_error::deserialize::<_, ObjectMeta>(Value::Object(obj.clone())) {
        Ok(meta) => Some(meta),
        Err(e) => {
            let field = join_serde_path("metadata", &e.path().to_string());
            if !errors.iter().any(|known| overlaps(&known.field, &field)) {
                errors.push(FieldError::new(field, e.inner().to_string()));
            }
            None
        }
    };
    if errors.len() > before { None } else { meta }
}

/// Why `name` is not a DNS-1123 subdomain (the rule for object names).
pub fn dns1123_subdomain_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("it is empty".into());
    }
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        match (bytes.first(), bytes.last()) {
            (Some(first), Some(last)) => {
                alnum(first) && alnum(last) && bytes.iter().all(|b| alnum(b) || *b == b'-')
            }
            _ => false,
        }
    };
    if name.split('.').all(label_ok) {
        None
    } else {
        Some(DNS1123_SUBDOMAIN_MESSAGE.into())
    }
}
