//! The schema walker: the CRD's structural checks, read from the schema
//! itself, with the API server's words.

use super::field::{FieldError, child, shown, type_phrase};
use super::suggest::unknown_field;
use crate::messages::{
    FUNCTION_NAME_PATTERN, MAP_SOURCE_ONE, REQUIRED, below_minimum, is_function_name,
    not_a_date_time, not_a_function_name,
};
use serde_json::{Map, Value};

/// Schema keywords the walker understands; a test fails on any other.
#[cfg(test)]
pub(super) const SCHEMA_KEYWORDS: [&str; 20] = [
    "type",
    "enum",
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
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "minProperties",
    "maxProperties",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
];

pub(super) fn walk(value: &mut Value, schema: &Value, path: &str, errors: &mut Vec<FieldError>) {
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
                errors.push(FieldError::new(path, below_minimum(shown_bound(min), n)));
                return;
            }
            if let (Some(max), Some(v)) = (get("maximum").and_then(Value::as_f64), n.as_f64())
                && v > max
            {
                errors.push(FieldError::new(
                    path,
                    crate::messages::above_maximum(shown_bound(max), n),
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
        // The same sentence, with the sources in the order the docs give them.
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
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.iter().any(|a| a.as_str() == Some(s))
    {
        errors.push(FieldError::new(
            path,
            crate::messages::not_in_enum(s, allowed),
        ));
        return;
    }
    if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) < min
    {
        errors.push(FieldError::new(
            path,
            format!("should be at least {min} chars long"),
        ));
        return;
    }
    if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
        && (s.chars().count() as u64) > max
    {
        errors.push(FieldError::new(
            path,
            format!("should be at most {max} chars long"),
        ));
        return;
    }
    if let Some(Value::String(pattern)) = schema.get("pattern")
        && let Some(message) = pattern_problem(pattern, s)
    {
        errors.push(FieldError::new(path, message));
        return;
    }
    if is_duration(schema)
        && let Err(e) = crate::duration::parse_duration(s)
    {
        errors.push(FieldError::new(path, e.to_string()));
        return;
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && chrono::DateTime::parse_from_rfc3339(s).is_err()
    {
        errors.push(FieldError::new(path, not_a_date_time(s)));
    }
}

/// The patterns the CRD schemas use, each checked by its Rust twin. A test
/// fails if a schema uses a pattern not listed here.
#[cfg(test)]
pub(super) const KNOWN_PATTERNS: [&str; 2] =
    [FUNCTION_NAME_PATTERN, crate::messages::REDUCER_NAME_PATTERN];

/// A duration field: its schema carries the duration rule.
pub(super) fn is_duration(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-validations")
        .and_then(Value::as_array)
        .is_some_and(|rules| {
            rules
                .iter()
                .any(|r| r["rule"].as_str() == Some(crate::duration::DURATION_RULE))
        })
}

fn pattern_problem(pattern: &str, s: &str) -> Option<String> {
    if pattern == FUNCTION_NAME_PATTERN {
        (!is_function_name(s)).then(|| not_a_function_name(s))
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
    if is_duration(schema)
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
