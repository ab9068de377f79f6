//! The input limits as the validation layer applies them: one rule and one
//! wording for every path a manifest takes (YAML file, JSON over HTTP).

use kontinuum_api::limits::{self, MAX_NESTING};
use kontinuum_api::validate::{FieldError, validate};
use serde_json::{Value, json};

/// `{a: {a: ... 1}}`, `levels` mappings deep.
fn nested(levels: usize) -> Value {
    let mut v = json!(1);
    for _ in 0..levels {
        v = json!({ "a": v });
    }
    v
}

fn task(spec: Value) -> Value {
    json!({
        "apiVersion": "kontinuum.dev/v1alpha1",
        "kind": "Task",
        "metadata": {"name": "t"},
        "spec": spec,
    })
}

fn errors(doc: &Value) -> Vec<(String, String)> {
    match validate(doc) {
        Ok(_) => panic!("accepted: {doc}"),
        Err(e) => e
            .into_iter()
            .map(|FieldError { field, message }| (field, message))
            .collect(),
    }
}

#[test]
fn nesting_is_counted_from_the_document_and_the_field_holding_it_is_named() {
    // document(1) > spec(2) > call(3) > args(4) > x(5): args' value may add
    // MAX_NESTING - 4 levels below `x`.
    let fits = MAX_NESTING - 4;
    let doc = task(json!({"call": {"function": "std.echo", "args": {"x": nested(fits)}}}));
    assert_eq!(limits::nesting(&doc, 1000), MAX_NESTING);
    validate(&doc).unwrap_or_else(|e| panic!("{e:?}"));

    for levels in [fits + 1, 121, 125, 300] {
        let doc = task(json!({"call": {"function": "std.echo", "args": {"x": nested(levels)}}}));
        assert_eq!(
            errors(&doc),
            [("spec.call.args".to_string(), limits::too_deep())],
            "{levels} levels"
        );
    }
}

#[test]
fn deep_items_and_unknown_fields_are_named_where_the_schema_stops() {
    let future = json!({
        "apiVersion": "kontinuum.dev/v1alpha1",
        "kind": "HierarchicalFuture",
        "metadata": {"name": "f"},
        "spec": {"map": {
            "source": {"items": [1, nested(80)]},
            "function": {"function": "std.echo"},
            "reduce": "collect"
        }},
    });
    assert_eq!(errors(&future)[0].0, "spec.map.source.items[1]");
    let mut doc = task(json!({"call": {"function": "std.echo"}, "extra": nested(80)}));
    assert_eq!(errors(&doc)[0].0, "spec.extra");
    doc["metadata"]["annotations"] = nested(80);
    assert_eq!(errors(&doc)[0].0, "metadata.annotations");
}

#[test]
fn numbers_beyond_a_double_are_refused_with_their_field() {
    let doc: Value = serde_json::from_str(
        r#"{"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task", "metadata": {"name": "t"},
            "spec": {"call": {"function": "std.echo", "args": {"x": [1, 1e400], "y": 2.5, "z": 1e-400,
            "big": 333333283333335000000333333283333335000000}}}}"#,
    )
    .unwrap();
    assert_eq!(
        errors(&doc),
        [(
            "spec.call.args.x[1]".to_string(),
            limits::not_finite("1e+400")
        )]
    );
}

#[test]
fn a_timeout_below_one_millisecond_is_refused_in_one_wording() {
    for text in ["0s", "0.0000001s", "0ms", "0.4ms"] {
        let doc = task(json!({"call": {"function": "std.echo"}, "timeout": text}));
        assert_eq!(
            errors(&doc),
            [("spec.timeout".to_string(), limits::timeout_too_short(text))]
        );
    }
    let doc = task(json!({"call": {"function": "std.echo"}, "timeout": "1ms"}));
    assert!(validate(&doc).is_ok());
    let future = json!({
        "apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
        "metadata": {"name": "f"},
        "spec": {"call": {"function": "std.echo"}, "timeout": "0s"},
    });
    assert_eq!(
        errors(&future),
        [("spec.timeout".to_string(), limits::timeout_too_short("0s"))]
    );
}
