//! A function that errors fails its task with the message, the run goes on,
//! and `kontinuum run` exits 1 and shows why.

use serde_json::Value;
use std::process::Command;

const MANIFEST: &str = "apiVersion: kontinuum.dev/v1alpha1
kind: Task
metadata: {name: refuses}
spec:
  call: {function: std.fail, args: {message: no such person, permanent: true}}
---
apiVersion: kontinuum.dev/v1alpha1
kind: Task
metadata: {name: python-exits}
spec:
  call:
    function: std.exec
    args: {command: [python3, -c, 'import sys; sys.exit(\"bad input file\")']}
  retry: {maxAttempts: 2, backoff: {initial: 10ms}}
---
apiVersion: kontinuum.dev/v1alpha1
kind: Task
metadata: {name: unknown-function}
spec:
  call: {function: people.update}
---
apiVersion: kontinuum.dev/v1alpha1
kind: Task
metadata: {name: fine}
spec:
  call: {function: std.sum, args: {a: 1, b: 2}}
";

fn run(format: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("failing.yaml");
    std::fs::write(&file, MANIFEST).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kontinuum"))
        .args(["run", "-o", format])
        .arg(&file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn errors_fail_their_task_with_the_message() {
    let (code, stdout) = run("json");
    assert_eq!(code, Some(1));
    let list: Value = serde_json::from_str(&stdout).unwrap();
    let items = list["items"].as_array().unwrap();
    let error = |i: usize| {
        assert_eq!(items[i]["status"]["phase"], "Failed", "{}", items[i]);
        items[i]["status"]["error"].clone()
    };
    let refused = error(0);
    assert_eq!(refused["message"], "no such person");
    assert_eq!(refused["kind"], "permanent");
    assert_eq!(
        items[0]["status"]["attempts"], 1,
        "a permanent error skips retries"
    );

    let exited = error(1);
    let message = exited["message"].as_str().unwrap();
    assert!(
        message.contains("bad input file"),
        "stderr's tail: {message}"
    );
    assert_eq!(items[1]["status"]["attempts"], 2, "retried, then failed");

    let unknown = error(2)["message"].as_str().unwrap().to_string();
    assert!(
        unknown.contains("people.update") && unknown.contains("default"),
        "{unknown}"
    );

    assert_eq!(items[3]["status"]["phase"], "Succeeded");
    assert_eq!(items[3]["status"]["result"], 3);
}

#[test]
fn the_table_says_why() {
    let (code, stdout) = run("text");
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("task/refuses: permanent error (attempt 1): no such person"),
        "{stdout}"
    );
    assert!(stdout.contains("task/python-exits: "), "{stdout}");
}
