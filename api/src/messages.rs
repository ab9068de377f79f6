//! The words and patterns that the CRD types and the validation layer share.
//!
//! The types put these in their schemas (CEL rule messages, `pattern`s); the
//! validator ([`crate::validate`]) says the same sentences when it checks a
//! manifest without the API server, and the engine's own checks call the
//! validator's per-rule functions, which use them too. So a user reads one
//! wording for one rule, whoever refused the input.
//!
//! This module depends on nothing else in the crate (nor do
//! [`crate::limits`] and [`crate::duration`]): the types below it and the
//! validator above it both take from it, never the other way round.

use std::fmt::Display;

// ---------------------------------------------------------------------------
// Messages of the CRDs' CEL rules (the derive attributes use these).

/// HierarchicalFuture: exactly one of map, call, parallel, sequence (field `spec`).
pub const FUTURE_ONE_BODY: &str = "spec must set exactly one body: map, call, parallel or sequence";
/// Range source: end before start (field `spec.map.source.range.end`).
pub const RANGE_END_BEFORE_START: &str = "spec.map.source.range.end must not be less than start";
/// Task: delay and notBefore together (field `spec.delay`).
pub const TASK_DELAY_AND_NOT_BEFORE: &str =
    "spec.delay and spec.notBefore cannot both be set: keep one";
/// WorkerPool: minReplicas above maxReplicas (field `spec.scaling.minReplicas`).
pub const SCALING_MIN_ABOVE_MAX: &str = "spec.scaling.minReplicas must not exceed maxReplicas";

/// Objects source: the url's form (field `spec.map.source.objects.url`).
pub const OBJECTS_URL: &str = "spec.map.source.objects.url must be s3://BUCKET/PREFIX/ (every object under the prefix) or s3://BUCKET/KEY (one object)";
/// Objects source: the endpoint's form (field `spec.map.source.objects.endpoint`).
pub const OBJECTS_ENDPOINT: &str = "spec.map.source.objects.endpoint must be an http:// or https:// address, e.g. http://s3.storage:8333";

/// Output: the url's form (field `spec.output.url`).
pub const OUTPUT_URL: &str =
    "spec.output.url must be s3://BUCKET/KEY naming one object (a key that does not end in /)";
/// Output: the endpoint's form (field `spec.output.endpoint`).
pub const OUTPUT_ENDPOINT: &str =
    "spec.output.endpoint must be an http:// or https:// address, e.g. http://s3.storage:8333";

/// Task and HierarchicalFuture: the spec may not change after creation (a
/// transition rule on `spec`). Its twin is the operator's: a spec that
/// differs from the one the engine runs is reported, never applied.
pub const SPEC_IMMUTABLE: &str =
    "spec is immutable: delete the resource and create it again to run a changed spec";

/// Every CEL message in the CRDs. Each has a twin in the validator
/// (SPEC_IMMUTABLE's is the operator's, since `kontinuum run` never updates);
/// a test fails if a CRD carries a message missing here, or the reverse.
pub const CEL_MESSAGES: [&str; 9] = [
    FUTURE_ONE_BODY,
    RANGE_END_BEFORE_START,
    OBJECTS_URL,
    OBJECTS_ENDPOINT,
    OUTPUT_URL,
    OUTPUT_ENDPOINT,
    TASK_DELAY_AND_NOT_BEFORE,
    SCALING_MIN_ABOVE_MAX,
    SPEC_IMMUTABLE,
];

// ---------------------------------------------------------------------------
// Rules the schema says with keywords, read as sentences.

/// The map source's schema (`minProperties: 1, maxProperties: 1`) read as a
/// sentence; CEL cannot express this rule because it cannot see `items`.
pub const MAP_SOURCE_ONE: &str =
    "spec.map.source must set exactly one of range, items, lines or objects";

/// A required field that is missing: the API server's words.
pub const REQUIRED: &str = "Required value";

/// The API server's words for a number below a schema's `minimum`.
pub fn below_minimum(minimum: impl Display, found: impl Display) -> String {
    format!("should be greater than or equal to {minimum} (found {found})")
}

/// A string outside its schema's `enum`, in the API server's words.
pub fn not_in_enum(found: &str, allowed: &[serde_json::Value]) -> String {
    let allowed: Vec<String> = allowed.iter().map(|a| a.to_string()).collect();
    format!(
        "Unsupported value: \"{found}\": supported values: {}",
        allowed.join(", ")
    )
}

/// A number above its schema maximum, in the API server's words.
pub fn above_maximum(maximum: impl Display, found: impl Display) -> String {
    format!("should be less than or equal to {maximum} (found {found})")
}

/// What a `date-time` field (`notBefore`) must look like.
pub fn not_a_date_time(found: &str) -> String {
    format!(
        "must be of type date-time, an RFC 3339 time such as 2026-12-01T00:00:00Z (found \"{found}\")"
    )
}

// ---------------------------------------------------------------------------
// Patterns, each with its Rust twin in the validator.

/// Function names: what the FnRef schema's `function` pattern allows.
pub const FUNCTION_NAME_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_.-]*$";

/// A function name that does not match [`FUNCTION_NAME_PATTERN`].
pub fn not_a_function_name(found: &str) -> String {
    format!(
        "should match '{FUNCTION_NAME_PATTERN}', a function name such as std.echo (found \"{found}\")"
    )
}

/// Whether `name` matches [`FUNCTION_NAME_PATTERN`] (its Rust twin; a test
/// holds the two together).
pub fn is_function_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    match bytes.next() {
        Some(first) if first.is_ascii_alphabetic() || first == b'_' => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The CRD's check of a reducer given by name (the `reduce` field is untyped,
/// so CEL cannot see it); `Reducer::from_value` says what is wrong.
pub const REDUCER_NAME_PATTERN: &str = "^(sum|count|min|max|mean|collect|merge)$";

/// The API server's words for a bad object name.
pub const DNS1123_SUBDOMAIN_MESSAGE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
