//! Schema fragments that derive macros cannot express: free-form JSON values
//! and durations, written the way the Kubernetes structural-schema rules need.

use schemars::{Schema, SchemaGenerator, json_schema};

/// Any JSON object (FnRef arguments, pod templates): kept as written.
pub fn free_form_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Any JSON value (results, items, reducers): untyped nodes are allowed only
/// with preserve-unknown-fields.
pub fn any_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "x-kubernetes-preserve-unknown-fields": true })
}

/// A list of arbitrary JSON values.
pub fn any_value_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "items": { "x-kubernetes-preserve-unknown-fields": true }
    })
}

/// A duration string such as `500ms`, `30s`, `5m`, `1h`.
pub fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "pattern": crate::duration::DURATION_PATTERN,
        "description": "A duration: a number and a unit (ms, s, m, h), e.g. 500ms, 30s, 5m, 1h, 1h30m."
    })
}

/// Keeps the Option-ness of a duration field while using [`duration`].
pub fn optional_duration(generator: &mut SchemaGenerator) -> Schema {
    duration(generator)
}

/// An RFC 3339 instant.
pub fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}
