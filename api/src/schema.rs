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

/// Longest duration text (`1h30m15s500ms` is 13).
pub const DURATION_MAX_LENGTH: u64 = 64;

/// A duration string such as `500ms`, `30s`, `5m`, `1h`. Checked by a CEL
/// rule whose message is `kontinuum run`'s (see [`crate::duration`]); the
/// length bound keeps the rule's cost estimate within the API server's
/// budget.
pub fn duration(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "string",
        "maxLength": DURATION_MAX_LENGTH,
        "description": "A duration: a number and a unit (ms, s, m, h), e.g. 500ms, 30s, 5m, 1h, 1h30m.",
        "x-kubernetes-validations": [{
            "rule": crate::duration::DURATION_RULE,
            "messageExpression": crate::duration::duration_message_expression(),
        }]
    })
}

/// Keeps the Option-ness of a duration field while using [`duration`].
pub fn optional_duration(generator: &mut SchemaGenerator) -> Schema {
    duration(generator)
}

/// Adds `resultText` to a status schema. The operator writes it beside
/// `result` (see [`crate::common::result_text`]); the engine's status
/// types leave it out, since only a cluster's clients need it.
pub fn with_result_text(schema: &mut Schema) {
    if let Some(properties) = schema
        .get_mut("properties")
        .and_then(serde_json::Value::as_object_mut)
    {
        properties.insert(
            "resultText".into(),
            serde_json::json!({
                "type": "string",
                "maxLength": crate::limits::RESULT_TEXT_LIMIT,
                "description": format!(
                    "The result as JSON text, exact (kubectl reads integers beyond 64 bits \
                     as doubles, which lose digits), cut to {} bytes.",
                    crate::limits::RESULT_TEXT_LIMIT
                ),
            }),
        );
    }
}

/// An RFC 3339 instant.
pub fn date_time(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "format": "date-time" })
}
