//! Rules beyond the schema's keywords: the twin of each CEL rule, what only
//! Rust can see (arguments the engine binds, the reducer), and one public
//! function per rule on typed values.
//!
//! The engine checks what it is handed without this layer (the operator's
//! resources, tasks spawned from code, its own defaults) with the public
//! functions here, so that one rule has one wording whoever refuses the
//! input. The manifest checks below call the same functions.

use super::field::{FieldError, overlaps};
use super::kind::Kind;
use super::schema_walk::walk;
use crate::fnref::{BindError, FnRef};
use crate::messages::{
    FUTURE_ONE_BODY, MAP_SOURCE_ONE, OBJECTS_ENDPOINT, OBJECTS_URL, OUTPUT_ENDPOINT, OUTPUT_URL,
    RANGE_END_BEFORE_START, SCALING_MIN_ABOVE_MAX, TASK_DELAY_AND_NOT_BEFORE, below_minimum,
    is_function_name, not_a_date_time, not_a_function_name,
};
use crate::reducer::Reducer;
use serde_json::{Map, Value};
use std::fmt::Display;

// ---------------------------------------------------------------------------
// One function per rule, on typed values.

/// The least `retry.maxAttempts` (the CRD schema's `minimum`; a test holds
/// the two equal, as for the other minimums here).
pub const MIN_ATTEMPTS: u32 = 1;
/// The least `retry.backoff.factor`.
pub const MIN_BACKOFF_FACTOR: f64 = 1.0;
/// The least `map.shardSize`.
pub const MIN_SHARD_SIZE: u64 = 1;
/// The least `map.fanout`.
pub const MIN_FANOUT: u32 = 2;

/// `value` at `field` is at least `minimum`; a NaN is not.
fn at_least<T: PartialOrd + Display>(field: &str, value: T, minimum: T) -> Result<T, FieldError> {
    if value >= minimum {
        Ok(value)
    } else {
        Err(FieldError::new(field, below_minimum(minimum, value)))
    }
}

/// `retry.maxAttempts` at `field` (e.g. `spec.retry.maxAttempts`).
pub fn max_attempts(field: &str, n: u32) -> Result<u32, FieldError> {
    at_least(field, n, MIN_ATTEMPTS)
}

/// `retry.backoff.factor` at `field`.
pub fn backoff_factor(field: &str, factor: f64) -> Result<f64, FieldError> {
    at_least(field, factor, MIN_BACKOFF_FACTOR)
}

/// `spec.map.shardSize`.
pub fn shard_size(n: u64) -> Result<u64, FieldError> {
    at_least("spec.map.shardSize", n, MIN_SHARD_SIZE)
}

/// `spec.map.fanout`.
pub fn fanout(n: u32) -> Result<u32, FieldError> {
    at_least("spec.map.fanout", n, MIN_FANOUT)
}

/// A duration at `field` (`500ms`, `1h30m`), in whole milliseconds.
pub fn duration_ms(field: &str, text: &str) -> Result<u64, FieldError> {
    crate::duration::parse_duration(text)
        .map(|d| d.as_millis() as u64)
        .map_err(|e| FieldError::new(field, e.to_string()))
}

/// A timeout at `field`: a duration of at least
/// [`crate::limits::MIN_TIMEOUT_MS`] (anything shorter would be a timeout of
/// zero that no attempt can meet).
pub fn timeout_ms(field: &str, text: &str) -> Result<u64, FieldError> {
    let ms = duration_ms(field, text)?;
    if ms < crate::limits::MIN_TIMEOUT_MS {
        return Err(FieldError::new(
            field,
            crate::limits::timeout_too_short(text),
        ));
    }
    Ok(ms)
}

/// An RFC 3339 time at `field` (`notBefore`), in milliseconds since the
/// epoch; times before 1970 count as 0.
pub fn date_time_ms(field: &str, text: &str) -> Result<u64, FieldError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis().max(0) as u64)
        .map_err(|_| FieldError::new(field, not_a_date_time(text)))
}

/// A Task sets at most one of `delay` and `notBefore`.
pub fn delay_or_not_before(delay: bool, not_before: bool) -> Result<(), FieldError> {
    if delay && not_before {
        return Err(FieldError::new("spec.delay", TASK_DELAY_AND_NOT_BEFORE));
    }
    Ok(())
}

/// A HierarchicalFuture sets exactly one body; `bodies` is how many it sets.
pub fn one_body(bodies: usize) -> Result<(), FieldError> {
    if bodies != 1 {
        return Err(not_one_body());
    }
    Ok(())
}

/// What [`one_body`] says, for a caller that found the bodies wrong itself.
pub fn not_one_body() -> FieldError {
    FieldError::new("spec", FUTURE_ONE_BODY)
}

/// A map sets exactly one source; `sources` is how many it sets.
pub fn one_map_source(sources: usize) -> Result<(), FieldError> {
    if sources != 1 {
        return Err(not_one_map_source());
    }
    Ok(())
}

/// What [`one_map_source`] says, for a caller that matched the sources itself.
pub fn not_one_map_source() -> FieldError {
    FieldError::new("spec.map.source", MAP_SOURCE_ONE)
}

/// A range source ends at or after its start.
pub fn range_end(start: i64, end: i64) -> Result<(), FieldError> {
    if end < start {
        return Err(FieldError::new(
            "spec.map.source.range.end",
            RANGE_END_BEFORE_START,
        ));
    }
    Ok(())
}

/// An objects source names a bucket with `s3://` and, if it names an
/// endpoint, an http(s) one (the CRD's CEL rules, said again).
pub fn objects_url(url: &str) -> Result<(), FieldError> {
    let bucket = url
        .strip_prefix("s3://")
        .map(|rest| rest.split('/').next().unwrap_or(""));
    if bucket.is_none_or(str::is_empty) {
        return Err(FieldError::new("spec.map.source.objects.url", OBJECTS_URL));
    }
    Ok(())
}

/// See [`objects_url`].
pub fn objects_endpoint(endpoint: &str) -> Result<(), FieldError> {
    let host = ["http://", "https://"]
        .iter()
        .find_map(|scheme| endpoint.strip_prefix(scheme));
    if host.is_none_or(|h| h.is_empty() || h.starts_with('/')) {
        return Err(FieldError::new(
            "spec.map.source.objects.endpoint",
            OBJECTS_ENDPOINT,
        ));
    }
    Ok(())
}

/// A future's output names one object (`s3://BUCKET/KEY`, the key not a
/// prefix) and, if it names an endpoint, an http(s) one.
pub fn output_url(url: &str) -> Result<(), FieldError> {
    let key = url
        .strip_prefix("s3://")
        .and_then(|rest| rest.split_once('/'))
        .filter(|(bucket, key)| !bucket.is_empty() && !key.is_empty() && !key.ends_with('/'));
    if key.is_none() {
        return Err(FieldError::new("spec.output.url", OUTPUT_URL));
    }
    Ok(())
}

/// See [`output_url`].
pub fn output_endpoint(endpoint: &str) -> Result<(), FieldError> {
    objects_endpoint(endpoint).map_err(|_| FieldError::new("spec.output.endpoint", OUTPUT_ENDPOINT))
}

fn output_rules(output: &Value, errors: &mut Vec<FieldError>) {
    if let Some(url) = output.get("url").and_then(Value::as_str) {
        push(errors, output_url(url));
    }
    if let Some(endpoint) = output.get("endpoint").and_then(Value::as_str) {
        push(errors, output_endpoint(endpoint));
    }
}

fn objects_rules(objects: &Value, errors: &mut Vec<FieldError>) {
    if let Some(url) = objects.get("url").and_then(Value::as_str) {
        push(errors, objects_url(url));
    }
    if let Some(endpoint) = objects.get("endpoint").and_then(Value::as_str) {
        push(errors, objects_endpoint(endpoint));
    }
}

/// A WorkerPool's `scaling.minReplicas` is not above `maxReplicas`.
pub fn replicas_in_order(min: i64, max: i64) -> Result<(), FieldError> {
    if min > max {
        return Err(FieldError::new(
            "spec.scaling.minReplicas",
            SCALING_MIN_ABOVE_MAX,
        ));
    }
    Ok(())
}

/// An FnRef given in code or over an API (not in a manifest) names a valid
/// function; `field` is where the FnRef sits (`call`, `spec.call`).
pub fn check_fnref(fnref: &FnRef, field: &str) -> Result<(), FieldError> {
    if is_function_name(&fnref.function) {
        Ok(())
    } else {
        Err(FieldError::new(
            format!("{field}.function"),
            not_a_function_name(&fnref.function),
        ))
    }
}

/// The arguments the engine binds when it calls an FnRef (`result` for
/// onSuccess, `item` for a map's function, ...) are not bound already;
/// `field` is where the FnRef sits.
pub fn engine_binds(
    args: &Map<String, Value>,
    field: &str,
    names: &[&str],
) -> Result<(), FieldError> {
    match names.iter().find(|name| args.contains_key(**name)) {
        Some(name) => Err(FieldError::new(
            format!("{field}.args.{name}"),
            BindError::AlreadyBound((*name).to_string()).to_string(),
        )),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// The same rules over a manifest's spec, every problem collected.

fn present<'a>(obj: &'a Value, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn push(errors: &mut Vec<FieldError>, checked: Result<(), FieldError>) {
    if let Err(e) = checked {
        errors.push(e);
    }
}

/// An argument the engine binds when it calls `fnref` must not be bound
/// already; each one bound is a problem of its own.
fn reserved_args(fnref: Option<&Value>, path: &str, names: &[&str], errors: &mut Vec<FieldError>) {
    let Some(args) = fnref
        .and_then(|f| present(f, "args"))
        .and_then(Value::as_object)
    else {
        return;
    };
    for name in names {
        push(errors, engine_binds(args, path, &[name]));
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

pub(super) fn task_rules(spec: &Value, errors: &mut Vec<FieldError>) {
    push(
        errors,
        delay_or_not_before(
            present(spec, "delay").is_some(),
            present(spec, "notBefore").is_some(),
        ),
    );
    continuation_rules(spec, errors);
    timeout_rule(spec, errors);
}

/// A timeout the engine would count as zero is refused (the pattern check
/// has already spoken about a malformed one).
pub(super) fn timeout_rule(spec: &Value, errors: &mut Vec<FieldError>) {
    if let Some(Value::String(text)) = present(spec, "timeout")
        && !errors.iter().any(|e| e.field == "spec.timeout")
        && let Err(e) = timeout_ms("spec.timeout", text)
    {
        errors.push(e);
    }
}

pub(super) fn future_rules(spec: &Value, errors: &mut Vec<FieldError>) {
    let bodies = ["map", "call", "parallel", "sequence"]
        .into_iter()
        .filter(|b| present(spec, b).is_some())
        .count();
    push(errors, one_body(bodies));
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
    if let Some(output) = present(spec, "output") {
        output_rules(output, errors);
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
    {
        push(errors, range_end(start, end));
    }
    if let Some(objects) = map.pointer("/source/objects") {
        objects_rules(objects, errors);
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
    if let Err(e) = Reducer::from_value(reduce) {
        errors.push(FieldError::new(FIELD, e.to_string()));
    }
}

pub(super) fn worker_pool_rules(spec: &Value, errors: &mut Vec<FieldError>) {
    if let Some(scaling) = present(spec, "scaling")
        && let (Some(min), Some(max)) = (
            scaling.get("minReplicas").and_then(Value::as_i64),
            scaling.get("maxReplicas").and_then(Value::as_i64),
        )
    {
        push(errors, replicas_in_order(min, max));
    }
}
