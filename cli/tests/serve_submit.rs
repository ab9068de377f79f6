//! `kontinuum submit` against a `kontinuum serve` process with a remote
//! `kontinuum-worker`: `--wait` prints and exits like `run`; bad manifests
//! exit 2 with FILE:LINE and nothing reaches the server.

mod serve_common;

use serve_common::{cli, examples, json, serve, worker};

#[test]
fn submit_wait_runs_sum_on_a_remote_worker() {
    let server = serve(None);
    let _worker = worker(&server);
    let sum = examples().join("sum.yaml");
    let sum = sum.to_str().unwrap();
    let out = cli(&server, &["submit", sum, "--wait", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let object = json(&out.stdout);
    assert_eq!(object["kind"], "Task");
    assert_eq!(object["spec"]["call"]["function"], "std.sum");
    assert_eq!(object["status"]["phase"], "Succeeded");
    assert_eq!(object["status"]["result"], 9);

    // The same again is a no-op; the table shows the result.
    let out = cli(&server, &["submit", sum, "--wait"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let row = out.stdout.lines().nth(1).unwrap_or_default().to_string();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[0], "task/sum-4-5", "{}", out.stdout);
    assert_eq!(cells[1], "Succeeded", "{}", out.stdout);
    assert_eq!(cells.last(), Some(&"9"), "{}", out.stdout);
}

#[test]
fn a_bad_manifest_exits_2_and_submits_nothing() {
    let server = serve(None);
    let file = server.dir.path().join("job.yaml");
    std::fs::write(
        &file,
        "apiVersion: kontinuum.dev/v1alpha1
kind: Task
metadata: {name: good}
spec:
  call: {function: std.echo, args: {x: 1}}
---
apiVersion: kontinuum.dev/v1alpha1
kind: HierarchicalFuture
metadata: {name: bad}
spec:
  map:
    source: {range: {start: 0, end: 10}}
    function: {function: std.square}
    shardSize: 0
",
    )
    .unwrap();
    let out = cli(&server, &["submit", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let expected = format!("{}:14: spec.map.shardSize:", file.display());
    assert!(out.stderr.contains(&expected), "{}", out.stderr);
    assert!(
        out.stderr.contains("nothing was submitted"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);

    // Nothing reached the server.
    let out = cli(&server, &["get", "task", "good"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("no object default/task/good"),
        "{}",
        out.stderr
    );
    let out = cli(&server, &["get", "tasks", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(json(&out.stdout)["items"], serde_json::json!([]));
    let out = cli(&server, &["get", "futures"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stderr.contains("No resources found"), "{}", out.stderr);
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let server = serve(None);
    let url = server.url.clone();
    drop(server);
    let sum = examples().join("sum.yaml");
    let out = std::process::Command::new(serve_common::KONTINUUM)
        .args(["submit", sum.to_str().unwrap(), "--server", &url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot reach the server"), "{stderr}");
    assert!(stderr.contains("kontinuum serve"), "{stderr}");
}

/// `--wait` returns once the continuation the outcome started is final too.
#[test]
fn submit_wait_waits_for_the_continuation() {
    let server = serve(None);
    let _worker = worker(&server);
    let file = server.dir.path().join("then.yaml");
    std::fs::write(
        &file,
        "apiVersion: kontinuum.dev/v1alpha1
kind: Task
metadata: {name: then}
spec:
  call: {function: std.sum, args: {a: 1, b: 2}}
  onSuccess: {function: std.sleep, args: {ms: 1500}}
",
    )
    .unwrap();
    let out = cli(
        &server,
        &["submit", file.to_str().unwrap(), "--wait", "-o", "json"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let object = json(&out.stdout);
    assert_eq!(object["status"]["continuation"], "then.on-success");
    let out = cli(&server, &["get", "task/then.on-success", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let continuation = json(&out.stdout);
    assert_eq!(
        continuation["status"]["phase"], "Succeeded",
        "submit --wait returned before the continuation ended: {continuation}"
    );
}
