//! `kontinuum serve --data DIR` stops cleanly on SIGTERM and keeps what it
//! accepted; a second server on the same store is refused with a clear
//! message.

mod serve_common;

use serve_common::{KONTINUUM, cli, json, restart, serve, worker};
use std::process::Command;

#[test]
fn accepted_work_survives_a_sigterm_restart() {
    let server = serve(None);
    let sum = serve_common::examples().join("sum.yaml");
    let sum = sum.to_str().unwrap();
    let out = cli(&server, &["submit", sum]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "task/sum-4-5 accepted\n");

    // Another server on the same store is refused while this one runs.
    let out = Command::new(KONTINUUM)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(server.dir.path().join("store"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("in use by another process"), "{stderr}");

    let server = restart(server);
    let _worker = worker(&server);
    let out = cli(&server, &["submit", sum, "--wait", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(json(&out.stdout)["status"]["result"], 9);
    assert_eq!(json(&out.stdout)["status"]["attempts"], 1);
}
