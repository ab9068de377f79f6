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
