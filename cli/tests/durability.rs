//! The hard way: `kill -9` a `kontinuum run --data D` midway, run the same
//! command again, and check that it resumes to the exact result, with no item
//! counted twice and the continuation run exactly once.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ITEMS: u64 = 400;

/// A map of 400 items of 40 ms each (about 8 s on 2 workers), counted; on
/// success a continuation appends one line to `log`.
fn manifest(log: &Path) -> String {
    format!(
        "apiVersion: kontinuum.dev/v1alpha1
kind: HierarchicalFuture
metadata: {{name: slow-count}}
spec:
  map:
    source: {{range: {{start: 0, end: {ITEMS}}}}}
    function: {{function: std.sleep, args: {{ms: 40}}}}
    shardSize: 8
    fanout: 4
    reduce: count
  onSuccess:
    function: std.exec
    args:
      command: [sh, -c, 'echo continuation ran >> {}']
",
        log.display()
    )
}

fn command(file: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kontinuum"));
    cmd.args(["run", "--workers", "2", "-o", "json", "--data"])
        .arg(data)
        .arg(file);
    cmd
}

/// Starts the run and kills it (SIGKILL) once its progress line shows some
/// but not all items done. Returns the percentage it was killed at.
fn start_and_kill(file: &Path, data: &Path) -> u64 {
    let mut child = command(file, data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let killed_at = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a progress line before the job finishes");
        // "future/slow-count: 41% 164/400"
        let Some(rest) = line.strip_prefix("future/slow-count: ") else {
            continue;
        };
        let Some(done) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.split('/').next())
            .and_then(|d| d.parse::<u64>().ok())
        else {
            continue;
        };
        if done > 0 && done < ITEMS {
            break done;
        }
    };
    child.kill().unwrap(); // SIGKILL on Unix: no chance to clean up
    let status = child.wait().unwrap();
    assert!(
        status.code().is_none(),
        "killed by a signal, not exited: {status}"
    );
    killed_at
}

#[test]
fn kill_9_midway_then_resume() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("continuation.log");
    let file = dir.path().join("job.yaml");
    let data = dir.path().join("store");
    std::fs::write(&file, manifest(&log)).unwrap();

    let done = start_and_kill(&file, &data);
    assert!(
        !log.exists(),
        "killed at {done}/{ITEMS}: the continuation cannot have run yet"
    );

    let out = command(&file, &data).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    let object: Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = &object["status"];
    assert_eq!(status["phase"], "Succeeded", "{object}");
    assert_eq!(
        status["result"],
        json!(ITEMS),
        "every item counted exactly once"
    );
    assert_eq!(status["progress"]["done"], json!(ITEMS), "{object}");

    let lines = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        lines, "continuation ran\n",
        "the continuation ran exactly once"
    );

    // A third run of the same command finds everything done and changes nothing.
    let again = command(&file, &data).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    let object: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(object["status"]["result"], json!(ITEMS));
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "continuation ran\n");
}
