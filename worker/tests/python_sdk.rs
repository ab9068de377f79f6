//! The Python SDK's own unit tests (sdk/python/test_kontinuum.py), run with
//! the system's python3 so that `cargo test` covers them. Without python3
//! this fails: handlers in Python are part of what the worker serves.

use std::path::Path;
use std::process::Command;

#[test]
fn the_python_sdk_unit_tests_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("python3")
        .args(["-m", "unittest", "discover", "-s", "sdk/python", "-v"])
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run python3 (install it: apt-get install python3): {e}")
        });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python3 -m unittest failed:\n{stderr}"
    );
    // unittest exits 0 when it finds no tests at all; that must not pass.
    let ran = stderr
        .lines()
        .find_map(|l| {
            l.strip_prefix("Ran ")?
                .split_whitespace()
                .next()?
                .parse::<u32>()
                .ok()
        })
        .unwrap_or(0);
    assert!(ran >= 10, "python3 ran {ran} tests:\n{stderr}");
}
