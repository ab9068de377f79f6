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
//! Where the checks come from:
//!
//! - The structural checks are read from the CRD schema itself (the
//!   `openAPIV3Schema` that [`crate::crds`] generates): unknown fields, types,
//!   required fields, minimums, patterns (durations, function names),
//!   `date-time` formats, minimum lengths and property counts. So a constraint
//!   added to a type's schema is checked here without further code, and the
//!   two cannot drift; a test fails if the schema uses a keyword this walker
//!   does not understand.
//! - Each CEL rule (`x-kubernetes-validations`) has a twin here whose message
//!   is the same `pub const` the derive attribute uses; a test fails if the
//!   CRD carries a CEL message without a twin.
//! - A few rules the API server cannot express (CEL cannot see untyped fields
//!   such as FnRef arguments or a reducer) are checked only here: arguments
//!   bound where the engine will bind them (`result`, `error`, `item`,
//!   `previous`, `acc`, `value`), and the reducer.
//!
//! `status` in a manifest is ignored, as `kubectl apply` ignores it for
//! resources with a status subresource.

use crate::fnref::{BindError, FnRef};
use crate::future::{HierarchicalFuture, HierarchicalFutureSpec};
use crate::reducer::Reducer;
use crate::task::{Task, TaskSpec};
use crate::workerpool::{WorkerPool, WorkerPoolSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::CustomResourceExt;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::sync::OnceLock;

// The shared words live in a leaf module that the types use too; they are
// named here as well for callers that reach them through the validator.
pub use crate::messages::{
    CEL_MESSAGES, DNS1123_SUBDOMAIN_MESSAGE, FUNCTION_NAME_PATTERN, FUTURE_ONE_BODY,
    MAP_SOURCE_ONE, RANGE_END_BEFORE_START, REDUCER_NAME_PATTERN, REQUIRED, SCALING_MIN_ABOVE_MAX,
    SPEC_IMMUTABLE, TASK_DELAY_AND_NOT_BEFORE,
};

/// One problem with a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field: `spec.map.shardSize`, `spec.parallel[1].args`,
    /// `metadata.name`; empty for the document as a whole.
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// `message` alone when it already names the field (the CEL sentences
/// start with it; unknown-field messages quote it), else `field: message`.
impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = self.field.as_str();
        let names_it = self
            .message
            .strip_prefix(field)
            .is_some_and(|rest| rest.starts_with([' ', ':']))
            || self.message.contains(&format!("\"{field}\""));
        if field.is_empty() || names_it {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Task,
    Future,
    WorkerPool,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Task, Kind::Future, Kind::WorkerPool];

    fn name(self) -> &'static str {
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

    fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The `spec` schema of this kind's CRD, as JSON.
    fn spec_schema(self) -> Option<&'static Value> {
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

const TOP_LEVEL_FIELDS: [&str; 5] = ["apiVersion", "kind", "metadata", "spec", "status"];

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

fn join_serde_path(prefix: &str, path: &str) -> String {
    if path == "." || path.is_empty() {
        prefix.to_string()
    } else if path.starts_with('[') {
        format!("{prefix}{path}")
    } else {
        format!("{prefix}.{path}")
    }
}

/// Whether one field path is the other or contains it.
fn overlaps(a: &str, b: &str) -> bool {
    let within = |outer: &str, inner: &str| {
        inner == outer
            || (inner.starts_with(outer)
                && matches!(inner.as_bytes().get(outer.len()), Some(b'.' | b'[')))
    };
    within(a, b) || within(b, a)
}

fn check_api_version(value: Option<&Value>, errors: &mut Vec<FieldError>) {
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

fn check_kind(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<Kind> {
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
fn check_metadata(value: Option<&Value>, errors: &mut Vec<FieldError>) -> Option<ObjectMeta> {
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

/// Whether `name` is a valid function name ([`FUNCTION_NAME_PATTERN`]).
pub fn is_function_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || first == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn unknown_fields(
    obj: &Map<String, Value>,
    path: &str,
    known: &[&str],
    errors: &mut Vec<FieldError>,
) {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(unknown_field(path, key, known.iter().copied()));
        }
    }
}

fn unknown_field<'a>(
    path: &str,
    key: &str,
    known: impl IntoIterator<Item = &'a str> + Clone,
) -> FieldError {
    let field = child(path, key);
    let mut message = format!("unknown field \"{field}\"");
    if let Some(s) = closest(key, known.clone()) {
        message.push_str(&format!(": did you mean {s}?"));
    } else {
        let list: Vec<&str> = known.into_iter().collect();
        if !list.is_empty() {
            let here = if path.is_empty() { "here" } else { path };
            message.push_str(&format!(" ({here} has {})", list.join(", ")));
        }
    }
    FieldError::new(field, message)
}

/// The candidate closest to `word`: the same ignoring case, or at most two
/// edits away.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let lower = word.to_ascii_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if c.to_ascii_lowercase() == lower {
            0
        } else {
            edit_distance(&lower, &c.to_ascii_lowercase())
        };
        if d <= 2 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn type_phrase(value: &Value) -> &'static str {
    crate::accumulator::type_phrase(value)
}

/// A value as a message quotes it: strings in double quotes, short JSON otherwise.
fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}

// ---------------------------------------------------------------------------
// The schema walker: the CRD's structural checks, with the API server's words.

/// Schema keywords the walker understands; a test fails on any other.
#[cfg(test)]
const SCHEMA_KEYWORDS: [&str; 17] = [
    "type",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "description",
    "nullable",
    "default",
    "format",
    "pattern",
    "minimum",
    "minLength",
    "minItems",
    "minProperties",
    "maxProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
];

fn walk(value: &mut Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let get = |key: &str| schema.get(key);
    if value.is_null() {
        if get("nullable") != Some(&Value::Bool(true))
            && let Some(Value::String(t)) = get("type")
        {
            errors.push(FieldError::new(
                path,
                format!("must be of type {t} (found null)"),
            ));
        }
        return;
    }
    if let Some(Value::String(t)) = get("type")
        && !has_type(value, t)
    {
        if t == "integer" {
            if let Some(whole) = integral_float(value) {
                // As the API server does: 2.0 is an integer.
                *value = whole;
            } else {
                errors.push(type_error(value, t, schema, path));
                return;
            }
        } else {
            errors.push(type_error(value, t, schema, path));
            return;
        }
    }
    let preserve = get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    match value {
        Value::Object(obj) => walk_object(obj, schema, preserve, path, errors),
        Value::Array(items) => {
            if let Some(min) = get("minItems").and_then(Value::as_u64)
                && (items.len() as u64) < min
            {
                errors.push(FieldError::new(
                    path,
                    format!("should have at least {min} items"),
                ));
            }
            if let Some(item_schema) = get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item, item_schema, &format!("{path}[{i}]"), errors);
                }
            }
        }
        Value::String(s) => walk_string(s, schema, path, errors),
        Value::Number(n) => {
            if let (Some(min), Some(v)) = (get("minimum").and_then(Value::as_f64), n.as_f64())
                && v < min
            {
                errors.push(FieldError::new(
                    path,
                    format!(
                        "should be greater than or equal to {} (found {n})",
                        shown_bound(min)
                    ),
                ));
                return;
            }
            if let Some((low, high)) = get("format").and_then(Value::as_str).and_then(int_range)
                && !n.as_i128().is_some_and(|i| i >= low && i <= high)
            {
                let low = get("minimum")
                    .and_then(Value::as_f64)
                    .map_or(low, |m| low.max(m as i128));
                errors.push(FieldError::new(
                    path,
                    format!("must be an integer from {low} to {high} (found {n})"),
                ));
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
}

fn walk_object(
    obj: &mut Map<String, Value>,
    schema: &Value,
    preserve: bool,
    path: &str,
    errors: &mut Vec<FieldError>,
) {
    let properties = schema.get("properties").and_then(Value::as_object);
    if let Some(Value::Array(required)) = schema.get("required") {
        for name in required.iter().filter_map(Value::as_str) {
            if !obj.contains_key(name) {
                let field = child(path, name);
                errors.push(FieldError::new(field, REQUIRED));
            }
        }
    }
    let min = schema.get("minProperties").and_then(Value::as_u64);
    let max = schema.get("maxProperties").and_then(Value::as_u64);
    let set = obj.values().filter(|v| !v.is_null()).count() as u64;
    if min.is_some_and(|m| set < m) || max.is_some_and(|m| set > m) {
        errors.push(FieldError::new(
            path,
            property_count_message(path, properties, min, max),
        ));
    }
    let additional = schema.get("additionalProperties");
    for (key, v) in obj.iter_mut() {
        let field = child(path, key);
        match properties.and_then(|p| p.get(key)) {
            Some(prop) => walk(v, prop, &field, errors),
            None => match additional {
                Some(extra) if extra.is_object() => walk(v, extra, &field, errors),
                _ if preserve || additional == Some(&Value::Bool(true)) => {}
                _ => errors.push(unknown_field(
                    path,
                    key,
                    properties
                        .map(|p| p.keys().map(String::as_str).collect::<Vec<_>>())
                        .unwrap_or_default(),
                )),
            },
        }
    }
}

/// `minProperties: 1, maxProperties: 1` reads "must set exactly one of a, b or c".
fn property_count_message(
    path: &str,
    properties: Option<&Map<String, Value>>,
    min: Option<u64>,
    max: Option<u64>,
) -> String {
    let names: Vec<&str> = properties
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let listed = match names.as_slice() {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    };
    if path == "spec.map.source" && min == Some(1) && max == Some(1) {
        // The same sentence, with the sources in the order DESIGN.md gives them.
        return MAP_SOURCE_ONE.to_string();
    }
    match (min, max) {
        (Some(1), Some(1)) if !listed.is_empty() => {
            format!("{path} must set exactly one of {listed}")
        }
        (Some(m), _) if m > 0 && max.is_none() => {
            format!("should have at least {m} properties")
        }
        (_, Some(m)) if min.is_none() => format!("should have at most {m} properties"),
        _ => format!(
            "should have between {} and {} properties",
            min.unwrap_or(0),
            max.unwrap_or(u64::MAX)
        ),
    }
}

fn walk_string(s: &str, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) < min
    {
        errors.push(FieldError::new(
            path,
            format!("should be at least {min} chars long"),
        ));
        return;
    }
    if let Some(Value::String(pattern)) = schema.get("pattern")
        && let Some(message) = pattern_problem(pattern, s)
    {
        errors.push(FieldError::new(path, message));
        return;
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && chrono::DateTime::parse_from_rfc3339(s).is_err()
    {
        errors.push(FieldError::new(
            path,
            format!(
                "must be of type date-time, an RFC 3339 time such as 2026-12-01T00:00:00Z (found \"{s}\")"
            ),
        ));
    }
}

/// The patterns the CRD schemas use, each checked by its Rust twin. A test
/// fails if a schema uses a pattern not listed here.
#[cfg(test)]
const KNOWN_PATTERNS: [&str; 3] = [
    crate::duration::DURATION_PATTERN,
    FUNCTION_NAME_PATTERN,
    REDUCER_NAME_PATTERN,
];

fn pattern_problem(pattern: &str, s: &str) -> Option<String> {
    if pattern == crate::duration::DURATION_PATTERN {
        crate::duration::parse_duration(s)
            .err()
            .map(|e| e.to_string())
    } else if pattern == FUNCTION_NAME_PATTERN {
        (!is_function_name(s)).then(|| {
            format!("should match '{pattern}', a function name such as std.echo (found \"{s}\")")
        })
    } else {
        // REDUCER_NAME_PATTERN: reducer_rules says it with reducer.rs's words.
        None
    }
}

fn has_type(value: &Value, t: &str) -> bool {
    match t {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "number" => value.is_number(),
        "integer" => match value {
            Value::Number(n) => n.as_str().bytes().all(|b| b.is_ascii_digit() || b == b'-'),
            _ => false,
        },
        _ => true,
    }
}

/// The range of an integer `format` (what the Rust field can hold).
fn int_range(format: &str) -> Option<(i128, i128)> {
    match format {
        "int32" => Some((i32::MIN.into(), i32::MAX.into())),
        "uint32" => Some((0, u32::MAX.into())),
        "int64" => Some((i64::MIN.into(), i64::MAX.into())),
        "uint64" => Some((0, u64::MAX.into())),
        _ => None,
    }
}

/// `2.0` as the integer `2` (as the API server accepts it); `None` otherwise.
fn integral_float(value: &Value) -> Option<Value> {
    let f = value.as_f64()?;
    if f.fract() == 0.0 && f.abs() < 9.0e15 {
        Some(Value::from(f as i64))
    } else {
        None
    }
}

fn type_error(value: &Value, t: &str, schema: &Value, path: &str) -> FieldError {
    // A bare number where a duration belongs: say what a duration looks like.
    if schema.get("pattern").and_then(Value::as_str) == Some(crate::duration::DURATION_PATTERN)
        && let Value::Number(n) = value
        && let Err(e) = crate::duration::parse_duration(&n.to_string())
    {
        return FieldError::new(path, e.to_string());
    }
    FieldError::new(
        path,
        format!(
            "must be of type {t} (found {}: {})",
            type_phrase(value),
            shown(value)
        ),
    )
}

fn shown_bound(bound: f64) -> String {
    if bound.fract() == 0.0 && bound.abs() < 1e15 {
        format!("{}", bound as i64)
    } else {
        format!("{bound}")
    }
}

// ---------------------------------------------------------------------------
// Rules beyond the schema: the CEL twins and what only Rust can see.

fn present<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// An argument the engine binds when it calls `fnref` must not be bound already.
fn reserved_args(fnref: Option<&Value>, path: &str, names: &[&str], errors: &mut Vec<FieldError>) {
    let Some(args) = fnref
        .and_then(|f| present(f, "args"))
        .and_then(Value::as_object)
    else {
        return;
    };
    for name in names {
        if args.contains_key(*name) {
            errors.push(FieldError::new(
                format!("{path}.args.{name}"),
                BindError::AlreadyBound((*name).to_string()).to_string(),
            ));
        }
    }
}

fn continuation_rules(spec: &Value, errors: &mut Vec<FieldError>) {
    reserved_args(
        present(spec, "onSuccess"),
        "spec.onSuccess",
        &["result"],
        errors,
    );
    reserved_args(
        present(spec, "onFailure"),
        "spec.onFailure",
        &["error"],
        errors,
    );
}

fn task_rules(spec: &Value, errors: &mut Vec<FieldError>) {
    if present(spec, "delay").is_some() && present(spec, "notBefore").is_some() {
        errors.push(FieldError::new("spec.delay", TASK_DELAY_AND_NOT_BEFORE));
    }
    continuation_rules(spec, errors);
    timeout_rule(spec, errors);
}

/// A timeout the engine would count as zero is refused: see
/// [`crate::limits::MIN_TIMEOUT_MS`]. (The pattern check has already spoken
/// about a malformed one.)
fn timeout_rule(spec: &Value, errors: &mut Vec<FieldError>) {
    if let Some(Value::String(text)) = present(spec, "timeout")
        && let Err(message) = check_timeout(text)
        && !errors.iter().any(|e| e.field == "spec.timeout")
    {
        errors.push(FieldError::new("spec.timeout", message));
    }
}

/// `Ok` for a well-formed timeout of at least [`crate::limits::MIN_TIMEOUT_MS`];
/// the engine applies the same check to what it is given.
pub fn check_timeout(text: &str) -> Result<u64, String> {
    let ms = crate::duration::parse_duration(text)
        .map_err(|e| e.to_string())?
        .as_millis() as u64;
    if ms < crate::limits::MIN_TIMEOUT_MS {
        return Err(crate::limits::timeout_too_short(text));
    }
    Ok(ms)
}

fn future_rules(spec: &Value, errors: &mut Vec<FieldError>) {
    let bodies = ["map", "call", "parallel", "sequence"]
        .into_iter()
        .filter(|b| present(spec, b).is_some())
        .count();
    if bodies != 1 {
        errors.push(FieldError::new("spec", FUTURE_ONE_BODY));
    }
    continuation_rules(spec, errors);
    timeout_rule(spec, errors);
    if let Some(Value::Array(steps)) = present(spec, "sequence") {
        for (i, step) in steps.iter().enumerate() {
            reserved_args(
                Some(step),
                &format!("spec.sequence[{i}]"),
                &["previous"],
                errors,
            );
        }
    }
    let Some(map) = present(spec, "map") else {
        return;
    };
    reserved_args(
        present(map, "function"),
        "spec.map.function",
        &["item"],
        errors,
    );
    if let Some(range) = map.pointer("/source/range")
        && let (Some(start), Some(end)) = (
            range.get("start").and_then(Value::as_i64),
            range.get("end").and_then(Value::as_i64),
        )
        && end < start
    {
        errors.push(FieldError::new(
            "spec.map.source.range.end",
            RANGE_END_BEFORE_START,
        ));
    }
    if let Some(reduce) = present(map, "reduce") {
        // Unless the schema walk already said what is wrong with it.
        if !errors.iter().any(|e| overlaps(&e.field, "spec.map.reduce")) {
            reducer_rules(reduce, errors);
        }
    }
}

/// The reducer is untyped in the schema (a name or an FnRef), so the API
/// server checks only its shape; the rest is checked here.
fn reducer_rules(reduce: &Value, errors: &mut Vec<FieldError>) {
    const FIELD: &str = "spec.map.reduce";
    if reduce.is_object() {
        // An FnRef: check it as the schema checks every other FnRef.
        let before = errors.len();
        let mut copy = reduce.clone();
        if let Some(fnref_schema) = Kind::Future
            .spec_schema()
            .and_then(|s| s.pointer("/properties/map/properties/function"))
        {
            walk(&mut copy, fnref_schema, FIELD, errors);
        }
        reserved_args(Some(reduce), FIELD, &["acc", "value"], errors);
        if errors.len() > before {
            return;
        }
    }
    if let Err(message) = Reducer::from_value(reduce) {
        errors.push(FieldError::new(FIELD, message));
    }
}

fn worker_pool_rules(spec: &Value, errors: &mut Vec<FieldError>) {
    if let Some(scaling) = present(spec, "scaling")
        && let (Some(min), Some(max)) = (
            scaling.get("minReplicas").and_then(Value::as_i64),
            scaling.get("maxReplicas").and_then(Value::as_i64),
        )
        && min > max
    {
        errors.push(FieldError::new(
            "spec.scaling.minReplicas",
            SCALING_MIN_ABOVE_MAX,
        ));
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

/// Checks an FnRef given in code or over an API (not in a manifest): a valid
/// function name, at `field`.
pub fn check_fnref(fnref: &FnRef, field: &str) -> Result<(), FieldError> {
    if is_function_name(&fnref.function) {
        Ok(())
    } else {
        Err(FieldError::new(
            format!("{field}.function"),
            format!(
                "should match '{FUNCTION_NAME_PATTERN}', a function name such as std.echo (found \"{}\")",
                fnref.function
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str) -> Result<Manifest, Vec<FieldError>> {
        let doc: Value = serde_yaml::from_str(yaml).unwrap();
        validate(&doc)
    }

    fn errors(yaml: &str) -> Vec<(String, String)> {
        match run(yaml) {
            Ok(m) => panic!("expected errors, got {m:?}"),
            Err(errors) => errors.into_iter().map(|e| (e.field, e.message)).collect(),
        }
    }

    /// Exactly one error, at `field`, with `message`.
    fn one_error(yaml: &str, field: &str, message: &str) {
        let got = errors(yaml);
        assert_eq!(
            got,
            vec![(field.to_string(), message.to_string())],
            "for:\n{yaml}"
        );
    }

    fn future(spec: &str) -> String {
        format!(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {{name: f}}\nspec:\n{}",
            indent(spec)
        )
    }

    fn task(spec: &str) -> String {
        format!(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {{name: t}}\nspec:\n{}",
            indent(spec)
        )
    }

    fn pool(spec: &str) -> String {
        format!(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: WorkerPool\nmetadata: {{name: p}}\nspec:\n{}",
            indent(spec)
        )
    }

    fn indent(spec: &str) -> String {
        spec.lines().map(|l| format!("  {l}\n")).collect()
    }

    const MAP: &str =
        "map:\n  source: {range: {start: 0, end: 10}}\n  function: {function: std.square}\n";

    #[test]
    fn valid_manifests_are_typed() {
        let m = run(&future(&format!(
            "{MAP}  shardSize: 2\n  fanout: 2\n  reduce: sum"
        )))
        .unwrap();
        let Manifest::Future(f) = &m else {
            panic!("{m:?}")
        };
        assert_eq!(m.name(), "f");
        assert_eq!(m.kind(), "HierarchicalFuture");
        let map = f.spec.map.as_ref().unwrap();
        assert_eq!(map.shard_size, Some(2));
        assert_eq!(
            map.reduce,
            Some(Reducer::Builtin(crate::reducer::BuiltinReducer::Sum))
        );
        assert_eq!(f.spec.pool, "default");

        let t = run(&task(
            "call: {function: std.sum, args: {a: 4, b: 5}}\nonSuccess: {function: std.log, args: {note: done}}\nretry: {maxAttempts: 3, backoff: {initial: 1s, factor: 2, max: 1m}}\ntimeout: 30s\ndelay: 10s\ndebounce: {initial: 60s, repeat: 60s}\nexclusive: {rerunOnSkip: true}\nttlAfterFinished: 1h",
        ))
        .unwrap();
        let Manifest::Task(t) = t else { panic!() };
        assert_eq!(t.spec.call, FnRef::new("std.sum").arg("a", 4).arg("b", 5));
        assert_eq!(t.metadata.name.as_deref(), Some("t"));

        let p = run(&pool(
            "concurrency: 4\nscaling: {minReplicas: 0, maxReplicas: 3}",
        ))
        .unwrap();
        assert_eq!(p.kind(), "WorkerPool");

        // Every body kind, and the other sources.
        for body in [
            "call: {function: my.tree}",
            "parallel: [{function: std.echo}, {function: std.echo}]",
            "sequence: [{function: std.echo}]",
            "map:\n  source: {items: [1, {a: 2}, x]}\n  function: {function: std.echo}\n  reduce: {function: my.add, args: {k: 1}}",
            "map:\n  source: {lines: {path: words.txt}}\n  function: {function: std.wordcount}\n  reduce: merge",
        ] {
            run(&future(body)).unwrap_or_else(|e| panic!("{body}: {e:?}"));
        }
        // notBefore alone, RFC 3339.
        run(&task(
            "call: {function: std.echo}\nnotBefore: \"2026-12-01T00:00:00Z\"",
        ))
        .unwrap();
        // 2.0 is an integer, as the API server accepts it.
        run(&task(
            "call: {function: std.echo}\nretry: {maxAttempts: 2.0}",
        ))
        .unwrap();
    }

    #[test]
    fn api_version() {
        let yaml =
            "apiVersion: v1\nkind: Task\nmetadata: {name: t}\nspec: {call: {function: std.echo}}";
        one_error(
            yaml,
            "apiVersion",
            "apiVersion 'v1' is not served by Kontinuum: write apiVersion: kontinuum.dev/v1alpha1",
        );
        let yaml = "kind: Task\nmetadata: {name: t}\nspec: {call: {function: std.echo}}";
        one_error(
            yaml,
            "apiVersion",
            "apiVersion is required: write apiVersion: kontinuum.dev/v1alpha1",
        );
    }

    #[test]
    fn kind_with_suggestion() {
        let base = "apiVersion: kontinuum.dev/v1alpha1\nmetadata: {name: x}\nspec: {}\nkind: ";
        for (kind, want) in [
            ("Future", "HierarchicalFuture"),
            ("future", "HierarchicalFuture"),
            ("hf", "HierarchicalFuture"),
            ("HierarchicalFutur", "HierarchicalFuture"),
            ("task", "Task"),
            ("Taks", "Task"),
            ("workerpool", "WorkerPool"),
            ("Pool", "WorkerPool"),
        ] {
            one_error(
                &format!("{base}{kind}"),
                "kind",
                &format!(
                    "kind '{kind}' is not one of Task, HierarchicalFuture or WorkerPool: did you mean kind: {want}?"
                ),
            );
        }
        one_error(
            &format!("{base}Deployment"),
            "kind",
            "kind 'Deployment' is not one of Task, HierarchicalFuture or WorkerPool",
        );
        one_error(
            "apiVersion: kontinuum.dev/v1alpha1\nmetadata: {name: x}",
            "kind",
            "kind is required: one of Task, HierarchicalFuture or WorkerPool",
        );
    }

    #[test]
    fn metadata_name() {
        let spec = "spec: {call: {function: std.echo}}";
        one_error(
            &format!("apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {{}}\n{spec}"),
            "metadata.name",
            REQUIRED,
        );
        one_error(
            &format!("apiVersion: kontinuum.dev/v1alpha1\nkind: Task\n{spec}"),
            "metadata.name",
            REQUIRED,
        );
        for bad in ["Bad_Name", "-x", "x-", "a..b", "UPPER"] {
            one_error(
                &format!(
                    "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {{name: \"{bad}\"}}\n{spec}"
                ),
                "metadata.name",
                &format!("Invalid value: \"{bad}\": {DNS1123_SUBDOMAIN_MESSAGE}"),
            );
        }
        for good in ["a", "sum-4-5", "my.job.v2", "0abc"] {
            assert!(dns1123_subdomain_problem(good).is_none(), "{good}");
        }
        assert!(dns1123_subdomain_problem(&"a".repeat(254)).is_some());
        one_error(
            &format!(
                "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {{name: t, labelz: {{}}}}\n{spec}"
            ),
            "metadata.labelz",
            "unknown field \"metadata.labelz\": did you mean labels?",
        );
        let labels = errors(&format!(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {{name: t, labels: {{a: [1]}}}}\n{spec}"
        ));
        assert_eq!(labels.len(), 1, "{labels:?}");
        assert_eq!(labels[0].0, "metadata.labels.a");
    }

    #[test]
    fn unknown_fields_are_named() {
        one_error(
            &future(&format!("{MAP}  shardsize: 3")),
            "spec.map.shardsize",
            "unknown field \"spec.map.shardsize\": did you mean shardSize?",
        );
        one_error(
            &task("call: {function: std.echo, argz: {}}"),
            "spec.call.argz",
            "unknown field \"spec.call.argz\": did you mean args?",
        );
        let got = errors(&task("call: {function: std.echo}\nfrobnicate: 1"));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "spec.frobnicate");
        assert!(
            got[0]
                .1
                .starts_with("unknown field \"spec.frobnicate\" (spec has call, debounce,"),
            "{}",
            got[0].1
        );
        one_error(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: t}\nspec: {call: {function: std.echo}}\nspecs: {}",
            "specs",
            "unknown field \"specs\": did you mean spec?",
        );
        // Arguments are free-form.
        run(&task(
            "call: {function: std.echo, args: {anything: {goes: [1]}}}",
        ))
        .unwrap();
    }

    #[test]
    fn type_errors_name_the_field() {
        one_error(
            &task("call: {function: std.echo}\nretry: {maxAttempts: \"3\"}"),
            "spec.retry.maxAttempts",
            "must be of type integer (found a string: \"3\")",
        );
        one_error(
            &task("call: {function: std.echo, args: 3}"),
            "spec.call.args",
            "must be of type object (found a number: 3)",
        );
        one_error(
            &task("call: {function: std.echo}\nexclusive: {rerunOnSkip: \"yes\"}"),
            "spec.exclusive.rerunOnSkip",
            "must be of type boolean (found a string: \"yes\")",
        );
        one_error(
            &task("call: {function: std.echo}\nretry: {maxAttempts: 2.5}"),
            "spec.retry.maxAttempts",
            "must be of type integer (found a number: 2.5)",
        );
        // Beyond the Rust type's range.
        one_error(
            &task("call: {function: std.echo}\nretry: {maxAttempts: 5000000000}"),
            "spec.retry.maxAttempts",
            "must be an integer from 1 to 4294967295 (found 5000000000)",
        );
        one_error(
            &future(&format!("{MAP}  shardSize: 100000000000000000000")),
            "spec.map.shardSize",
            "must be an integer from 1 to 18446744073709551615 (found 100000000000000000000)",
        );
        one_error(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: t}\nspec: [1]",
            "spec",
            "must be of type object (found an array: [1])",
        );
        let got = errors("- 1");
        assert_eq!(
            got,
            vec![(
                String::new(),
                "a manifest must be a mapping with apiVersion, kind, metadata and spec, not an array"
                    .to_string()
            )]
        );
    }

    #[test]
    fn future_needs_exactly_one_body() {
        one_error(
            &future("call: {function: std.echo}\nparallel: [{function: std.echo}]"),
            "spec",
            FUTURE_ONE_BODY,
        );
        one_error(&future("pool: default"), "spec", FUTURE_ONE_BODY);
        assert_eq!(
            FUTURE_ONE_BODY,
            "spec must set exactly one body: map, call, parallel or sequence"
        );
        one_error(
            &future("parallel: []"),
            "spec.parallel",
            "should have at least 1 items",
        );
    }

    #[test]
    fn map_source_exactly_one() {
        for source in [
            "{}",
            "{range: {start: 0, end: 1}, items: [1]}",
            "{range: {start: 0, end: 1}, lines: {path: x}}",
        ] {
            one_error(
                &future(&format!(
                    "map:\n  source: {source}\n  function: {{function: std.echo}}"
                )),
                "spec.map.source",
                MAP_SOURCE_ONE,
            );
        }
        one_error(
            &future("map:\n  source: {lines: {path: \"\"}}\n  function: {function: std.echo}"),
            "spec.map.source.lines.path",
            "should be at least 1 chars long",
        );
        one_error(
            &future("map:\n  function: {function: std.echo}"),
            "spec.map.source",
            REQUIRED,
        );
    }

    #[test]
    fn shard_size_fanout_weight_minimums() {
        one_error(
            &future(&format!("{MAP}  shardSize: 0")),
            "spec.map.shardSize",
            "should be greater than or equal to 1 (found 0)",
        );
        one_error(
            &future(&format!("{MAP}  fanout: 1")),
            "spec.map.fanout",
            "should be greater than or equal to 2 (found 1)",
        );
        one_error(
            &format!("{}weight: 0\n", future(MAP)).replace("weight", "  weight"),
            "spec.weight",
            "should be greater than or equal to 1 (found 0)",
        );
        // All of them at once: every problem is reported.
        let got = errors(&future(&format!(
            "{MAP}  shardSize: 0\n  fanout: 1\n  reduce: avg"
        )));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.map.shardSize", "spec.map.fanout", "spec.map.reduce"]
        );
    }

    #[test]
    fn reducer_must_be_known() {
        one_error(
            &future(&format!("{MAP}  reduce: avg")),
            "spec.map.reduce",
            "unknown reducer 'avg': use one of sum, count, min, max, mean, collect, merge, or an FnRef {function: ...}",
        );
        let got = errors(&future(&format!("{MAP}  reduce: 3")));
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "spec.map.reduce");
        assert!(got[0].1.contains("reducer must be a string or an object"));
        one_error(
            &future(&format!("{MAP}  reduce: {{args: {{}}}}")),
            "spec.map.reduce.function",
            REQUIRED,
        );
        one_error(
            &future(&format!("{MAP}  reduce: {{function: 7}}")),
            "spec.map.reduce.function",
            "must be of type string (found a number: 7)",
        );
        one_error(
            &future(&format!("{MAP}  reduce: {{function: my.add, argz: {{}}}}")),
            "spec.map.reduce.argz",
            "unknown field \"spec.map.reduce.argz\": did you mean args?",
        );
        one_error(
            &future(&format!("{MAP}  reduce: {{function: \"9add\"}}")),
            "spec.map.reduce.function",
            "should match '^[A-Za-z_][A-Za-z0-9_.-]*$', a function name such as std.echo (found \"9add\")",
        );
        one_error(
            &future(&format!(
                "{MAP}  reduce: {{function: my.add, args: {{acc: 0}}}}"
            )),
            "spec.map.reduce.args.acc",
            "argument 'acc' is already bound",
        );
    }

    #[test]
    fn durations_parse() {
        for field in ["timeout", "delay", "ttlAfterFinished"] {
            one_error(
                &task(&format!("call: {{function: std.echo}}\n{field}: 5x")),
                &format!("spec.{field}"),
                "'5x' is not a duration: the unit is not one of ms, s, m, h (write e.g. 500ms, 30s, 5m, 1h or 1h30m)",
            );
        }
        one_error(
            &task("call: {function: std.echo}\ntimeout: 30"),
            "spec.timeout",
            "'30' is not a duration: a number has no unit (write e.g. 500ms, 30s, 5m, 1h or 1h30m)",
        );
        one_error(
            &task("call: {function: std.echo}\ndebounce: {initial: 1d}"),
            "spec.debounce.initial",
            "'1d' is not a duration: the unit is not one of ms, s, m, h (write e.g. 500ms, 30s, 5m, 1h or 1h30m)",
        );
        one_error(
            &task("call: {function: std.echo}\nretry: {backoff: {max: 1 m}}"),
            "spec.retry.backoff.max",
            "'1 m' is not a duration: a number has no unit (write e.g. 500ms, 30s, 5m, 1h or 1h30m)",
        );
        let got = errors(&future(&format!("{MAP}timeout: x\ndeadline: 1.s")));
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["spec.timeout", "spec.deadline"]);
        one_error(
            &pool("scaling: {scaleDownDelay: soon}"),
            "spec.scaling.scaleDownDelay",
            "'soon' is not a duration: a unit must follow a number (write e.g. 500ms, 30s, 5m, 1h or 1h30m)",
        );
    }

    #[test]
    fn retry_limits() {
        one_error(
            &task("call: {function: std.echo}\nretry: {maxAttempts: 0}"),
            "spec.retry.maxAttempts",
            "should be greater than or equal to 1 (found 0)",
        );
        one_error(
            &task("call: {function: std.echo}\nretry: {maxAttempts: -1}"),
            "spec.retry.maxAttempts",
            "should be greater than or equal to 1 (found -1)",
        );
        one_error(
            &task("call: {function: std.echo}\nretry: {backoff: {factor: 0.5}}"),
            "spec.retry.backoff.factor",
            "should be greater than or equal to 1 (found 0.5)",
        );
        one_error(
            &future(&format!("{MAP}failurePolicy: {{maxFailedChildren: -2}}")),
            "spec.failurePolicy.maxFailedChildren",
            "should be greater than or equal to 0 (found -2)",
        );
    }

    #[test]
    fn task_requires_call() {
        one_error(&task("pool: default"), "spec.call", REQUIRED);
        one_error(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: t}",
            "spec",
            REQUIRED,
        );
    }

    #[test]
    fn delay_and_not_before_are_exclusive() {
        one_error(
            &task("call: {function: std.echo}\ndelay: 1s\nnotBefore: \"2026-12-01T00:00:00Z\""),
            "spec.delay",
            TASK_DELAY_AND_NOT_BEFORE,
        );
        assert_eq!(
            TASK_DELAY_AND_NOT_BEFORE,
            "spec.delay and spec.notBefore cannot both be set: keep one"
        );
    }

    #[test]
    fn not_before_is_rfc3339() {
        for bad in ["2026-01-01", "tomorrow", "2026-12-01 00:00"] {
            one_error(
                &task(&format!(
                    "call: {{function: std.echo}}\nnotBefore: \"{bad}\""
                )),
                "spec.notBefore",
                &format!(
                    "must be of type date-time, an RFC 3339 time such as 2026-12-01T00:00:00Z (found \"{bad}\")"
                ),
            );
        }
        run(&task(
            "call: {function: std.echo}\nnotBefore: \"2026-12-01T01:02:03.5+02:00\"",
        ))
        .unwrap();
    }

    #[test]
    fn function_names() {
        for bad in ["", "9lives", "has space", "a/b", "-x"] {
            one_error(
                &task(&format!("call: {{function: \"{bad}\"}}")),
                "spec.call.function",
                &format!(
                    "should match '^[A-Za-z_][A-Za-z0-9_.-]*$', a function name such as std.echo (found \"{bad}\")"
                ),
            );
        }
        for good in ["std.echo", "_x", "people.update-v2", "A_b.c-d9"] {
            assert!(is_function_name(good), "{good}");
        }
        one_error(
            &future("parallel: [{function: std.echo}, {function: \"no good\"}]"),
            "spec.parallel[1].function",
            "should match '^[A-Za-z_][A-Za-z0-9_.-]*$', a function name such as std.echo (found \"no good\")",
        );
        one_error(&task("call: {args: {}}"), "spec.call.function", REQUIRED);
        assert!(check_fnref(&FnRef::new("std.echo"), "call").is_ok());
        assert_eq!(
            check_fnref(&FnRef::new(""), "call").unwrap_err().field,
            "call.function"
        );
    }

    #[test]
    fn engine_bound_arguments_must_be_free() {
        one_error(
            &task("call: {function: std.echo}\nonSuccess: {function: std.log, args: {result: 1}}"),
            "spec.onSuccess.args.result",
            "argument 'result' is already bound",
        );
        one_error(
            &task("call: {function: std.echo}\nonFailure: {function: std.log, args: {error: x}}"),
            "spec.onFailure.args.error",
            "argument 'error' is already bound",
        );
        one_error(
            &future(&format!(
                "{MAP}onSuccess: {{function: std.log, args: {{result: 1}}}}"
            )),
            "spec.onSuccess.args.result",
            "argument 'result' is already bound",
        );
        one_error(
            &future(
                "map:\n  source: {items: [1]}\n  function: {function: std.square, args: {item: 2}}",
            ),
            "spec.map.function.args.item",
            "argument 'item' is already bound",
        );
        one_error(
            &future("sequence: [{function: a}, {function: b, args: {previous: []}}]"),
            "spec.sequence[1].args.previous",
            "argument 'previous' is already bound",
        );
        // The same names elsewhere are fine.
        run(&task(
            "call: {function: std.echo, args: {result: 1, error: 2, item: 3}}\nonSuccess: {function: std.log, args: {error: 1}}",
        ))
        .unwrap();
        run(&future(
            "parallel: [{function: a, args: {previous: 1, item: 2}}]",
        ))
        .unwrap();
    }

    #[test]
    fn range_end_not_before_start() {
        one_error(
            &future(
                "map:\n  source: {range: {start: 5, end: 1}}\n  function: {function: std.square}",
            ),
            "spec.map.source.range.end",
            RANGE_END_BEFORE_START,
        );
        run(&future(
            "map:\n  source: {range: {start: 5, end: 5}}\n  function: {function: std.square}",
        ))
        .unwrap();
        one_error(
            &future("map:\n  source: {range: {start: 5}}\n  function: {function: std.square}"),
            "spec.map.source.range.end",
            REQUIRED,
        );
    }

    #[test]
    fn scaling_min_not_above_max() {
        one_error(
            &pool("scaling: {minReplicas: 3, maxReplicas: 1}"),
            "spec.scaling.minReplicas",
            SCALING_MIN_ABOVE_MAX,
        );
        one_error(
            &pool("replicas: -1"),
            "spec.replicas",
            "should be greater than or equal to 0 (found -1)",
        );
    }

    #[test]
    fn status_is_ignored() {
        let yaml = format!(
            "{}status: {{phase: Succeeded, bogus: 1}}\n",
            task("call: {function: std.echo}")
        );
        let Manifest::Task(t) = run(&yaml).unwrap() else {
            panic!()
        };
        assert!(t.status.is_none());
    }

    #[test]
    fn all_errors_are_collected() {
        let yaml = "apiVersion: v2\nkind: HierarchicalFuture\nmetadata: {name: Bad}\nspec:\n  call: {function: std.echo}\n  parallel: [{function: \"\"}]\n  timeout: 5x\n  retry: {maxAttempts: 0}\n";
        let got = errors(yaml);
        let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "apiVersion",
                "metadata.name",
                "spec.parallel[0].function",
                "spec.timeout",
                "spec.retry.maxAttempts",
                "spec",
            ]
        );
    }

    #[test]
    fn display_names_the_field_once() {
        let e = FieldError::new("spec", FUTURE_ONE_BODY);
        assert_eq!(e.to_string(), FUTURE_ONE_BODY);
        let e = FieldError::new(
            "spec.onSuccess.args.result",
            "argument 'result' is already bound",
        );
        assert_eq!(
            e.to_string(),
            "spec.onSuccess.args.result: argument 'result' is already bound"
        );
        let e = FieldError::new(
            "spec",
            "must be of type object (found a string: \"respect\")",
        );
        assert_eq!(
            e.to_string(),
            "spec: must be of type object (found a string: \"respect\")"
        );
        let e = FieldError::new("spec.x", "unknown field \"spec.x\"");
        assert_eq!(e.to_string(), "unknown field \"spec.x\"");
    }

    // -- agreement with the CRDs ------------------------------------------

    fn crd_specs() -> Vec<&'static Value> {
        Kind::ALL
            .into_iter()
            .map(|k| k.spec_schema().expect("schema"))
            .collect()
    }

    fn visit(schema: &Value, f: &mut dyn FnMut(&Map<String, Value>)) {
        let Some(obj) = schema.as_object() else {
            return;
        };
        f(obj);
        if let Some(Value::Object(props)) = obj.get("properties") {
            for p in props.values() {
                visit(p, f);
            }
        }
        for key in ["items", "additionalProperties"] {
            if let Some(s) = obj.get(key) {
                visit(s, f);
            }
        }
    }

    #[test]
    fn every_cel_message_has_a_rust_twin_and_vice_versa() {
        let mut found = Vec::new();
        for spec in crd_specs() {
            visit(spec, &mut |node| {
                if let Some(Value::Array(rules)) = node.get("x-kubernetes-validations") {
                    for rule in rules {
                        found.push(rule["message"].as_str().unwrap_or_default().to_string());
                    }
                }
            });
        }
        for message in &found {
            assert!(
                CEL_MESSAGES.contains(&message.as_str()),
                "CEL message without a Rust twin in validate.rs: {message}"
            );
        }
        for message in CEL_MESSAGES {
            assert!(
                found.iter().any(|m| m == message),
                "not in the CRDs: {message}"
            );
        }
        // And the generated YAML carries them verbatim.
        let yaml = crate::crds::crds_yaml().unwrap();
        for message in CEL_MESSAGES {
            let in_yaml = yaml.contains(message) || yaml.contains(&format!("'{message}'"));
            assert!(in_yaml, "not in crds_yaml(): {message}");
        }
    }

    #[test]
    fn the_walker_understands_every_schema_keyword_and_pattern() {
        for spec in crd_specs() {
            visit(spec, &mut |node| {
                for key in node.keys() {
                    assert!(
                        SCHEMA_KEYWORDS.contains(&key.as_str()),
                        "schema keyword the validator ignores: {key}"
                    );
                }
                if let Some(Value::String(p)) = node.get("pattern") {
                    assert!(KNOWN_PATTERNS.contains(&p.as_str()), "unknown pattern {p}");
                }
                if let Some(Value::String(f)) = node.get("format") {
                    assert!(
                        ["date-time", "int32", "int64", "uint32", "uint64", "double"]
                            .contains(&f.as_str()),
                        "unknown format {f}"
                    );
                }
            });
        }
        // The map source's property counts read as the sentence above.
        let future = Kind::Future.spec_schema().unwrap();
        let source = future.pointer("/properties/map/properties/source").unwrap();
        assert_eq!(source["minProperties"], Value::from(1));
        assert_eq!(source["maxProperties"], Value::from(1));
        // The function name pattern is in the FnRef schema.
        let call = Kind::Task.spec_schema().unwrap();
        assert_eq!(
            call.pointer("/properties/call/properties/function/pattern"),
            Some(&Value::from(FUNCTION_NAME_PATTERN))
        );
    }

    #[test]
    fn function_name_checker_agrees_with_the_pattern() {
        // A small cross-check of is_function_name against the pattern's meaning.
        let alphabet = ['a', 'Z', '_', '.', '-', '0', ' ', '/', 'é'];
        for a in alphabet {
            for b in alphabet {
                let name: String = [a, b].iter().collect();
                let first_ok = a.is_ascii_alphabetic() || a == '_';
                let rest_ok = b.is_ascii_alphanumeric() || matches!(b, '_' | '.' | '-');
                assert_eq!(is_function_name(&name), first_ok && rest_ok, "{name:?}");
            }
        }
    }
}
