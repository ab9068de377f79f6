//! `kontinuum get`, `tree` and `cancel` against `kontinuum serve`, conflicts, the
//! bearer token, and the refusal to listen beyond loopback without one.

mod serve_common;

use serve_common::{KONTINUUM, cli, json, serve};
use std::process::Command;

const SLOW: &str = "apiVersion: kontinuum.dev/v1alpha1
kind: HierarchicalFuture
metadata: {name: slow}
spec:
  map:
    source: {range: {start: 0, end: 1000}}
    function: {function: std.square}
    reduce: sum
";

#[test]
fn get_and_cancel_round_trip() {
    // No worker: the future stays unfinished until cancelled.
    let server = serve(None);
    let file = server.dir.path().join("slow.yaml");
    std::fs::write(&file, SLOW).unwrap();
    let out = cli(&server, &["submit", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "future/slow accepted\n");

    let out = cli(&server, &["get", "hf", "slow", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let object = json(&out.stdout);
    assert_eq!(object["kind"], "HierarchicalFuture");
    assert_eq!(object["metadata"]["name"], "slow");
    let phase = object["status"]["phase"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !["Succeeded", "Failed", "Cancelled"].contains(&phase.as_str()),
        "{phase}"
    );

    let out = cli(&server, &["get", "futures"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("NAME"), "{}", out.stdout);
    assert!(out.stdout.contains("future/slow"), "{}", out.stdout);

    let out = cli(&server, &["tree", "slow"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let first = out.stdout.lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("future/slow "), "{}", out.stdout);
    assert!(first.ends_with("0/1000"), "{}", out.stdout);
    let out = cli(&server, &["tree", "future/slow", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(json(&out.stdout)["root"]["weight"], 1000);
    let out = cli(&server, &["tree", "future/none"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("404"), "{}", out.stderr);

    let out = cli(&server, &["cancel", "slow"]);
    assert_eq!(
        out.code,
        Some(2),
        "a bare name is ambiguous: {}",
        out.stderr
    );
    let out = cli(&server, &["cancel", "future/slow"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "future/slow cancelled\n");

    let out = cli(&server, &["get", "future/slow", "-o", "yaml"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("phase: Cancelled"), "{}", out.stdout);

    // Another spec under the same name: a conflict, exit 2.
    std::fs::write(&file, SLOW.replace("1000", "2000")).unwrap();
    let out = cli(&server, &["submit", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(out.stderr.contains("409"), "{}", out.stderr);

    let out = cli(&server, &["cancel", "task/none"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("404"), "{}", out.stderr);
}

#[test]
fn objects_are_named_by_namespace_kind_and_name() {
    let server = serve(None);
    let file = server.dir.path().join("two.yaml");
    let in_ns = |ns: &str| {
        SLOW.replace(
            "metadata: {name: slow}",
            &format!("metadata: {{name: slow, namespace: {ns}}}"),
        )
    };
    std::fs::write(
        &file,
        format!("{}---\n{}", in_ns("team-a"), in_ns("team-b")),
    )
    .unwrap();
    let out = cli(&server, &["submit", file.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    // KIND NAME -n NS, KIND/NAME -n NS and NS/KIND/NAME name the same object.
    for args in [
        &["get", "hf", "slow", "-n", "team-a", "-o", "json"][..],
        &["get", "future/slow", "-n", "team-a", "-o", "json"],
        &["get", "team-a/hf/slow", "-o", "json"],
    ] {
        let out = cli(&server, args);
        assert_eq!(out.code, Some(0), "{args:?}: {}", out.stderr);
        let object = json(&out.stdout);
        assert_eq!(object["metadata"]["namespace"], "team-a", "{args:?}");
    }
    // Without -n: the namespace "default", which holds nothing here.
    let out = cli(&server, &["get", "futures"]);
    assert!(out.stderr.contains("No resources found"), "{}", out.stderr);
    let out = cli(&server, &["get", "futures", "-A"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let header = out.stdout.lines().next().unwrap_or_default().to_string();
    assert!(header.starts_with("NAMESPACE"), "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("future/slow").count(),
        2,
        "{}",
        out.stdout
    );
    let out = cli(&server, &["get", "team-a/hf/slow", "-n", "team-b"]);
    assert_eq!(out.code, Some(2), "two namespaces: {}", out.stderr);

    let out = cli(&server, &["tree", "slow", "-n", "team-b"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.starts_with("future/slow "), "{}", out.stdout);
    let out = cli(&server, &["cancel", "team-b/future/slow"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "future/slow cancelled\n");
    let b = json(&cli(&server, &["get", "team-b/hf/slow", "-o", "json"]).stdout);
    let a = json(&cli(&server, &["get", "team-a/hf/slow", "-o", "json"]).stdout);
    assert_eq!(b["status"]["phase"], "Cancelled");
    assert_ne!(
        a["status"]["phase"], "Cancelled",
        "only team-b's was cancelled"
    );
}

#[test]
fn a_wrong_or_missing_token_is_a_clear_error() {
    let server = serve(Some("s3cret"));
    let wrong = server.dir.path().join("wrong");
    std::fs::write(&wrong, "guess\n").unwrap();
    let right = server.dir.path().join("token");

    let out = cli(
        &server,
        &["get", "tasks", "--token-file", wrong.to_str().unwrap()],
    );
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("wrong bearer token"), "{}", out.stderr);
    assert!(out.stderr.contains("--token-file"), "{}", out.stderr);

    let out = cli(&server, &["get", "tasks"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(
        out.stderr.contains("missing bearer token"),
        "{}",
        out.stderr
    );

    let out = cli(
        &server,
        &["get", "tasks", "--token-file", right.to_str().unwrap()],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

#[test]
fn serve_refuses_a_public_address_without_a_token() {
    let out = Command::new(KONTINUUM)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("without a bearer token"), "{stderr}");
    assert!(stderr.contains("--token-file"), "{stderr}");
}
