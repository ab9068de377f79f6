//! The schema walk: unknown fields, types, required fields, minimums,
//! patterns and formats, in the API server's words.

use super::*;

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
fn durations_parse() {
    for field in ["timeout", "delay", "ttlAfterFinished"] {
        one_error(
            &task(&format!("call: {{function: std.echo}}\n{field}: 5x")),
            &format!("spec.{field}"),
            &format!(
                "'5x' is not a duration: {}",
                crate::duration::NOT_A_DURATION
            ),
        );
    }
    one_error(
        &task("call: {function: std.echo}\ntimeout: 30"),
        "spec.timeout",
        &format!(
            "'30' is not a duration: {}",
            crate::duration::NOT_A_DURATION
        ),
    );
    one_error(
        &task("call: {function: std.echo}\ndebounce: {initial: 1d}"),
        "spec.debounce.initial",
        &format!(
            "'1d' is not a duration: {}",
            crate::duration::NOT_A_DURATION
        ),
    );
    one_error(
        &task("call: {function: std.echo}\nretry: {backoff: {max: 1 m}}"),
        "spec.retry.backoff.max",
        &format!(
            "'1 m' is not a duration: {}",
            crate::duration::NOT_A_DURATION
        ),
    );
    let got = errors(&future(&format!("{MAP}timeout: x\ndeadline: 1.s")));
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(fields, ["spec.timeout", "spec.deadline"]);
    one_error(
        &pool("scaling: {scaleDownDelay: soon}"),
        "spec.scaling.scaleDownDelay",
        &format!(
            "'soon' is not a duration: {}",
            crate::duration::NOT_A_DURATION
        ),
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
