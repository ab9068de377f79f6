//! One problem with a manifest ([`FieldError`]) and the small helpers every
//! check uses to name fields and quote values. Depends on nothing else in
//! the validator.

use serde_json::Value;
use std::fmt;

/// One problem with a manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field: `spec.map.shardSize`, `spec.parallel[1].args`,
    /// `metadata.name`; empty for the document as a whole.
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub(super) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
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

pub(super) fn join_serde_path(prefix: &str, path: &str) -> String {
    if path == "." || path.is_empty() {
        prefix.to_string()
    } else if path.starts_with('[') {
        format!("{prefix}{path}")
    } else {
        format!("{prefix}.{path}")
    }
}

/// Whether one field path is the other or contains it.
pub(super) fn overlaps(a: &str, b: &str) -> bool {
    let within = |outer: &str, inner: &str| {
        inner == outer
            || (inner.starts_with(outer)
                && matches!(inner.as_bytes().get(outer.len()), Some(b'.' | b'[')))
    };
    within(a, b) || within(b, a)
}

pub(super) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

pub(super) fn type_phrase(value: &Value) -> &'static str {
    crate::accumulator::type_phrase(value)
}

/// A value as a message quotes it: strings in double quotes, short JSON otherwise.
pub(super) fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        let cut: String = text.chars().take(57).collect();
        format!("{cut}...")
    } else {
        text
    }
}
