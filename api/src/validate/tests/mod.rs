//! The validator's tests, by mechanism; the helpers build manifests from a
//! spec in YAML and read back the problems found.

mod agreement;
mod envelope;
mod rules;
mod schema;

use super::*;
use crate::fnref::FnRef;
use crate::reducer::Reducer;

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
