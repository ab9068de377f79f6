//! A result larger than the status cap (4 KiB) is still printed whole by
//! `kontinuum run`.

use std::process::Command;

#[test]
fn run_prints_a_large_result_whole() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("big.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {name: big}\nspec:\n  map: {source: {range: {start: 0, end: 3000}}, function: {function: std.square}, reduce: collect}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kontinuum"))
        .arg("run")
        .arg(&manifest)
        .args(["-o", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let result = object["status"]["result"]
        .as_array()
        .expect("whole result inline");
    assert_eq!(result.len(), 3000);
    assert_eq!(result[2999], serde_json::json!(2999 * 2999));
    assert!(object["status"].get("resultRef").is_none());
}

mod serve_common;

use serve_common::{cli, json, serve, worker};

/// Over the API the status holds at most 4 KiB of a result; `submit --wait`
/// and `get KIND/NAME` fetch the whole one, a listing points there.
#[test]
fn submit_wait_and_get_print_a_large_result_whole() {
    let server = serve(None);
    let _worker = worker(&server);
    let manifest = server.dir.path().join("big.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {name: big}\nspec:\n  map: {source: {range: {start: 0, end: 3000}}, function: {function: std.square}, reduce: collect}\n",
    )
    .unwrap();
    let whole = |object: &serde_json::Value| {
        let result = object["status"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("no whole result: {}", object["status"]));
        assert_eq!(result.len(), 3000);
        assert_eq!(result[2999], serde_json::json!(2999 * 2999));
        assert!(object["status"].get("resultRef").is_none());
    };
    let out = cli(
        &server,
        &["submit", manifest.to_str().unwrap(), "--wait", "-o", "json"],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    whole(&json(&out.stdout));
    let out = cli(&server, &["get", "future/big", "-o", "json"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    whole(&json(&out.stdout));

    // The listing keeps the status as stored: truncated, with a pointer.
    let out = cli(&server, &["get", "futures", "-o", "json"]);
    let listed = &json(&out.stdout)["items"][0]["status"];
    assert_eq!(listed["resultTruncated"], true, "{listed}");
    assert!(listed["resultRef"].is_string(), "{listed}");
    let out = cli(&server, &["get", "futures"]);
    assert!(
        out.stdout.contains("(over 4 KiB: get KIND/NAME)"),
        "{}",
        out.stdout
    );
}
