//! The rules beyond the schema: the CEL twins, arguments the engine binds,
//! the reducer.

use super::*;
use crate::messages::{OBJECTS_ENDPOINT, OBJECTS_URL, OUTPUT_ENDPOINT, OUTPUT_URL};

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
        &future("map:\n  source: {range: {start: 5, end: 1}}\n  function: {function: std.square}"),
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
fn objects_name_a_bucket_an_http_endpoint_and_a_known_read() {
    let objects = |fields: &str| {
        future(&format!(
            "map:\n  source: {{objects: {{{fields}}}}}\n  function: {{function: std.wordcount}}"
        ))
    };
    for url in ["https://bucket/x", "s3://", "s3:///key", "bucket/prefix/"] {
        one_error(
            &objects(&format!("url: '{url}'")),
            "spec.map.source.objects.url",
            OBJECTS_URL,
        );
    }
    for endpoint in ["s3.example.com", "ftp://s3.example.com", "http://"] {
        one_error(
            &objects(&format!("url: 's3://b/p/', endpoint: '{endpoint}'")),
            "spec.map.source.objects.endpoint",
            OBJECTS_ENDPOINT,
        );
    }
    one_error(
        &objects("url: 's3://b/p/', read: words"),
        "spec.map.source.objects.read",
        "Unsupported value: \"words\": supported values: \"lines\", \"objects\"",
    );
    for fine in [
        "url: 's3://b'",
        "url: 's3://b/'",
        "url: 's3://b/corpus/big.txt', region: eu-west-1",
        "url: 's3://b/p/', endpoint: 'http://10.0.0.7:8014', read: objects",
    ] {
        run(&objects(fine)).unwrap_or_else(|e| panic!("{fine}: {e:?}"));
    }
}

#[test]
fn an_output_names_one_object_and_an_http_endpoint() {
    let output = |fields: &str| {
        future(&format!(
            "map:\n  source: {{range: {{start: 0, end: 3}}}}\n  function: {{function: std.square}}\noutput: {{{fields}}}"
        ))
    };
    for url in ["s3://b", "s3://b/", "s3://b/dir/", "https://b/k", "s3:///k"] {
        one_error(
            &output(&format!("url: '{url}'")),
            "spec.output.url",
            OUTPUT_URL,
        );
    }
    one_error(
        &output("url: 's3://b/k.json', endpoint: 'store:8333'"),
        "spec.output.endpoint",
        OUTPUT_ENDPOINT,
    );
    run(&output(
        "url: 's3://b/results/k.json', endpoint: 'http://10.0.0.7:8014'",
    ))
    .unwrap();
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

/// The error of the only problem in `yaml`, as the per-rule functions give it.
fn manifest_error(yaml: &str) -> FieldError {
    let mut got = run(yaml).unwrap_err();
    assert_eq!(got.len(), 1, "{got:?}");
    got.remove(0)
}

#[test]
fn each_rule_function_says_what_the_manifest_check_says() {
    use crate::validate::rules::*;
    let echo = "call: {function: std.echo}\n";
    let cases: Vec<(Result<(), FieldError>, String)> = vec![
        (
            max_attempts("spec.retry.maxAttempts", 0).map(drop),
            task(&format!("{echo}retry: {{maxAttempts: 0}}")),
        ),
        (
            backoff_factor("spec.retry.backoff.factor", 0.5).map(drop),
            task(&format!("{echo}retry: {{backoff: {{factor: 0.5}}}}")),
        ),
        (
            shard_size(0).map(drop),
            future(&format!("{MAP}  shardSize: 0")),
        ),
        (fanout(1).map(drop), future(&format!("{MAP}  fanout: 1"))),
        (
            duration_ms("spec.timeout", "5x").map(drop),
            task(&format!("{echo}timeout: 5x")),
        ),
        (
            timeout_ms("spec.timeout", "0s").map(drop),
            task(&format!("{echo}timeout: 0s")),
        ),
        (
            date_time_ms("spec.notBefore", "tomorrow").map(drop),
            task(&format!("{echo}notBefore: tomorrow")),
        ),
        (
            delay_or_not_before(true, true),
            task(&format!(
                "{echo}delay: 1s\nnotBefore: \"2026-12-01T00:00:00Z\""
            )),
        ),
        (
            one_body(2),
            future("call: {function: a}\nparallel: [{function: b}]"),
        ),
        (
            one_map_source(2),
            future(
                "map:\n  source: {range: {start: 0, end: 1}, items: [1]}\n  function: {function: a}",
            ),
        ),
        (
            range_end(5, 1),
            future("map:\n  source: {range: {start: 5, end: 1}}\n  function: {function: a}"),
        ),
        (
            replicas_in_order(3, 1),
            pool("scaling: {minReplicas: 3, maxReplicas: 1}"),
        ),
        (
            check_fnref(&FnRef::new("9lives"), "spec.call"),
            task("call: {function: \"9lives\"}"),
        ),
        (
            engine_binds(
                &FnRef::new("std.log").arg("result", 1).args,
                "spec.onSuccess",
                &["result"],
            ),
            task(&format!(
                "{echo}onSuccess: {{function: std.log, args: {{result: 1}}}}"
            )),
        ),
    ];
    for (checked, yaml) in cases {
        assert_eq!(checked.unwrap_err(), manifest_error(&yaml), "for:\n{yaml}");
    }
}

#[test]
fn rule_functions_accept_what_the_manifest_accepts() {
    use crate::validate::rules::*;
    assert_eq!(max_attempts("f", 1), Ok(1));
    assert_eq!(backoff_factor("f", 1.0), Ok(1.0));
    assert_eq!(shard_size(1), Ok(1));
    assert_eq!(fanout(2), Ok(2));
    assert_eq!(duration_ms("f", "1h30m"), Ok(5_400_000));
    assert_eq!(timeout_ms("f", "1ms"), Ok(1));
    assert_eq!(date_time_ms("f", "1970-01-01T00:00:01Z"), Ok(1000));
    assert_eq!(date_time_ms("f", "1969-01-01T00:00:00Z"), Ok(0));
    assert!(delay_or_not_before(true, false).is_ok());
    assert!(one_body(1).is_ok());
    assert!(one_map_source(1).is_ok());
    assert!(range_end(5, 5).is_ok());
    assert!(replicas_in_order(1, 1).is_ok());
    // A factor that is not a number is not at least 1 either.
    let nan = backoff_factor("spec.retry.backoff.factor", f64::NAN).unwrap_err();
    assert_eq!(
        nan.message,
        "should be greater than or equal to 1 (found NaN)"
    );
}
