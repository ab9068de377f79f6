//! The envelope (apiVersion, kind, metadata), valid manifests typed, every
//! problem collected, and how a problem is displayed.

use super::*;

#[test]
fn valid_manifests_are_typed() {
    let m = run(&future(&format!(
        "{MAP}  shardSize: 2\n  fanout: 2\n  reduce: sum"
    )))
    .unwrap();
    let Manifest::Future(f) = &m else {
        panic!("{m:?}")
    };
    assert_eq!(m.name(), "f");
    assert_eq!(m.kind(), "HierarchicalFuture");
    let map = f.spec.map.as_ref().unwrap();
    assert_eq!(map.shard_size, Some(2));
    assert_eq!(
        map.reduce,
        Some(Reducer::Builtin(crate::reducer::BuiltinReducer::Sum))
    );
    assert_eq!(f.spec.pool, "default");

    let t = run(&task(
        "call: {function: std.sum, args: {a: 4, b: 5}}\nonSuccess: {function: std.log, args: {note: done}}\nretry: {maxAttempts: 3, backoff: {initial: 1s, factor: 2, max: 1m}}\ntimeout: 30s\ndelay: 10s\ndebounce: {initial: 60s, repeat: 60s}\nexclusive: {rerunOnSkip: true}\nttlAfterFinished: 1h",
    ))
    .unwrap();
    let Manifest::Task(t) = t else { panic!() };
    assert_eq!(t.spec.call, FnRef::new("std.sum").arg("a", 4).arg("b", 5));
    assert_eq!(t.metadata.name.as_deref(), Some("t"));

    let p = run(&pool(
        "concurrency: 4\nscaling: {minReplicas: 0, maxReplicas: 3}",
    ))
    .unwrap();
    assert_eq!(p.kind(), "WorkerPool");

    // Every body kind, and the other sources.
    for body in [
        "call: {function: my.tree}",
        "parallel: [{function: std.echo}, {function: std.echo}]",
        "sequence: [{function: std.echo}]",
        "map:\n  source: {items: [1, {a: 2}, x]}\n  function: {function: std.echo}\n  reduce: {function: my.add, args: {k: 1}}",
        "map:\n  source: {lines: {path: words.txt}}\n  function: {function: std.wordcount}\n  reduce: merge",
    ] {
        run(&future(body)).unwrap_or_else(|e| panic!("{body}: {e:?}"));
    }
    // notBefore alone, RFC 3339.
    run(&task(
        "call: {function: std.echo}\nnotBefore: \"2026-12-01T00:00:00Z\"",
    ))
    .unwrap();
    // 2.0 is an integer, as the API server accepts it.
    run(&task(
        "call: {function: std.echo}\nretry: {maxAttempts: 2.0}",
    ))
    .unwrap();
}

#[test]
fn api_version() {
    let yaml =
        "apiVersion: v1\nkind: Task\nmetadata: {name: t}\nspec: {call: {function: std.echo}}";
    one_error(
        yaml,
        "apiVersion",
        "apiVersion 'v1' is not served by Kontinuum: write apiVersion: kontinuum.dev/v1alpha1",
    );
    let yaml = "kind: Task\nmetadata: {name: t}\nspec: {call: {function: std.echo}}";
    one_error(
        yaml,
        "apiVersion",
        "apiVersion is required: write apiVersion: kontinuum.dev/v1alpha1",
    );
}

#[test]
fn kind_with_suggestion() {
    let base = "apiVersion: kontinuum.dev/v1alpha1\nmetadata: {name: x}\nspec: {}\nkind: ";
    for (kind, want) in [
        ("Future", "HierarchicalFuture"),
        ("future", "HierarchicalFuture"),
        ("hf", "HierarchicalFuture"),
        ("HierarchicalFutur", "HierarchicalFuture"),
        ("task", "Task"),
        ("Taks", "Task"),
        ("workerpool", "WorkerPool"),
        ("Pool", "WorkerPool"),
    ] {
        one_error(
            &format!("{base}{kind}"),
            "kind",
            &format!(
                "kind '{kind}' is not one of Task, HierarchicalFuture or WorkerPool: did you mean kind: {want}?"
            ),
        );
    }
    one_error(
        &format!("{base}Deployment"),
        "kind",
        "kind 'Deployment' is not one of Task, HierarchicalFuture or WorkerPool",
    );
    one_error(
        "apiVersion: kontinuum.dev/v1alpha1\nmetadata: {name: x}",
        "kind",
        "kind is required: one of Task, HierarchicalFuture or WorkerPool",
    );
}

#[test]
fn metadata_name() {
    let spec = "spec: {call: {function: std.echo}}";
    one_error(
        &format!("apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {{}}\n{spec}"),
        "metadata.name",
        REQUIRED,
    );
    one_error(
        &format!("apiVersion: kontinuum.dev/v1alpha1\nkind: Task\n{spec}"),
        "metadata.name",
        REQUIRED,
    );
    for bad in ["Bad_Name", "-x", "x-", "a..b", "UPPER"] {
        one_error(
            &format!(
                "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {{name: \"{bad}\"}}\n{spec}"
            ),
            "metadata.name",
            &format!("Invalid value: \"{bad}\": {DNS1123_SUBDOMAIN_MESSAGE}"),
        );
    }
    for good in ["a", "sum-4-5", "my.job.v2", "0abc"] {
        assert!(dns1123_subdomain_problem(good).is_none(), "{good}");
    }
    assert!(dns1123_subdomain_problem(&"a".repeat(254)).is_some());
    one_error(
        &format!(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {{name: t, labelz: {{}}}}\n{spec}"
        ),
        "metadata.labelz",
        "unknown field \"metadata.labelz\": did you mean labels?",
    );
    let labels = errors(&format!(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {{name: t, labels: {{a: [1]}}}}\n{spec}"
    ));
    assert_eq!(labels.len(), 1, "{labels:?}");
    assert_eq!(labels[0].0, "metadata.labels.a");
}

#[test]
fn status_is_ignored() {
    let yaml = format!(
        "{}status: {{phase: Succeeded, bogus: 1}}\n",
        task("call: {function: std.echo}")
    );
    let Manifest::Task(t) = run(&yaml).unwrap() else {
        panic!()
    };
    assert!(t.status.is_none());
}

#[test]
fn all_errors_are_collected() {
    let yaml = "apiVersion: v2\nkind: HierarchicalFuture\nmetadata: {name: Bad}\nspec:\n  call: {function: std.echo}\n  parallel: [{function: \"\"}]\n  timeout: 5x\n  retry: {maxAttempts: 0}\n";
    let got = errors(yaml);
    let fields: Vec<&str> = got.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        [
            "apiVersion",
            "metadata.name",
            "spec.parallel[0].function",
            "spec.timeout",
            "spec.retry.maxAttempts",
            "spec",
        ]
    );
}

#[test]
fn display_names_the_field_once() {
    let e = FieldError::new("spec", FUTURE_ONE_BODY);
    assert_eq!(e.to_string(), FUTURE_ONE_BODY);
    let e = FieldError::new(
        "spec.onSuccess.args.result",
        "argument 'result' is already bound",
    );
    assert_eq!(
        e.to_string(),
        "spec.onSuccess.args.result: argument 'result' is already bound"
    );
    let e = FieldError::new(
        "spec",
        "must be of type object (found a string: \"respect\")",
    );
    assert_eq!(
        e.to_string(),
        "spec: must be of type object (found a string: \"respect\")"
    );
    let e = FieldError::new("spec.x", "unknown field \"spec.x\"");
    assert_eq!(e.to_string(), "unknown field \"spec.x\"");
}
