//! The hard way: `kill -9` (and, gently, Ctrl-C) a `kontinuum run --data D`
//! midway, run the same command again, and check that it resumes to the
//! exact result, with no item counted twice and the continuation run exactly
//! once.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
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

/// Starts the run and returns once its progress line shows some but not all
/// items done, with the items done then.
fn start_until_midway(file: &Path, data: &Path) -> (Child, u64) {
    let mut child = command(file, data)
        .stdout(Stdio::piped())
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
    loop {
        let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            let _ = child.kill();
            let status = child.wait();
            panic!("no progress line midway through the job ({status:?})");
        };
        // "future/slow-count: 41% 164/400"
        let Some(rest) = line.strip_prefix("future/slow-count: ") else {
            continue;
        };
        let done = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.split('/').next())
            .and_then(|d| d.parse::<u64>().ok());
        if let Some(done) = done.filter(|d| (1..ITEMS).contains(d)) {
            return (child, done);
        }
    }
}

/// Runs the same command to the end and checks the exact outcome: every
/// item counted once, the continuation's line written once.
fn finish_and_check(file: &Path, data: &Path, log: &Path) {
    let out = command(file, data).output().unwrap();
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
    let lines = std::fs::read_to_string(log).unwrap();
    assert_eq!(
        lines, "continuation ran\n",
        "the continuation ran exactly once"
    );
}

struct Job {
    _dir: tempfile::TempDir,
    file: PathBuf,
    data: PathBuf,
    log: PathBuf,
}

fn job() -> Job {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("continuation.log");
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, manifest(&log)).unwrap();
    Job {
        file,
        data: dir.path().join("store"),
        log,
        _dir: dir,
    }
}

#[test]
fn kill_9_midway_then_resume() {
    let j = job();
    let (mut child, done) = start_until_midway(&j.file, &j.data);
    child.kill().unwrap(); // SIGKILL on Unix: no chance to clean up
    let status = child.wait().unwrap();
    assert!(status.code().is_none(), "killed by a signal: {status}");
    assert!(
        !j.log.exists(),
        "killed at {done}/{ITEMS}: no continuation yet"
    );

    finish_and_check(&j.file, &j.data, &j.log);
    // A third run of the same command finds everything done, changes nothing.
    finish_and_check(&j.file, &j.data, &j.log);
}

#[test]
fn ctrl_c_midway_then_resume() {
    let j = job();
    let (child, _) = start_until_midway(&j.file, &j.data);
    let interrupt = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupt.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "Ctrl-C stops the workers, exits 130"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing is printed for an unfinished run"
    );
    assert!(!j.log.exists(), "no continuation yet");

    finish_and_check(&j.file, &j.data, &j.log);
}
