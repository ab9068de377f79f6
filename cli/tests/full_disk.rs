//! A full disk, for real: each test mounts a small tmpfs, lets the store
//! fill it, and checks that the first failed write stops things promptly
//! with a clear message, that nothing acknowledged is lost (a copy of the
//! store on a roomier disk resumes to the exact result), and that neither
//! Ctrl-C nor SIGTERM can hang afterwards.
//!
//! Mounting needs root (CAP_SYS_ADMIN), which the test machines and CI
//! have. Without it these tests fail with the reason; they never skip.

use kontinuum_engine::{Engine, EngineConfig, EngineError, Submission};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const KONTINUUM: &str = env!("CARGO_BIN_EXE_kontinuum");

/// A tmpfs of a given size, unmounted on drop.
struct Tmpfs {
    point: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().join("disk");
        std::fs::create_dir(&point).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&point)
            .output()
            .unwrap_or_else(|e| panic!("cannot run mount: {e}"));
        assert!(
            out.status.success(),
            "cannot mount a {size} tmpfs at {}: {}\nThese tests need root (CAP_SYS_ADMIN) to make a disk that fills up; they do not skip.",
            point.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { point, _dir: dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.point.join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process of a failed test may still hold a file there.
        let _ = Command::new("umount").arg("-l").arg(&self.point).status();
    }
}

/// `cp -a from to`: the store moved to a disk with room.
fn copy_store(from: &Path, to: &Path) {
    let status = Command::new("cp").arg("-a").arg(from).arg(to).status();
    assert!(status.unwrap().success(), "cp -a {}", from.display());
}

/// Waits for `child` at most `limit`; kills it and fails if it is still running.
fn wait_bounded(child: &mut Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -{name} {}", child.id()))
        .status()
        .unwrap();
    assert!(status.success());
}

/// Stderr as lines on a channel, and everything it said when asked.
fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn padded_task(pad: usize) -> kontinuum_api::TaskSpec {
    serde_json::from_value(
        json!({"call": {"function": "std.echo", "args": {"pad": "x".repeat(pad)}}}),
    )
    .unwrap()
}

#[test]
fn a_failed_write_stops_the_engine_at_once_and_loses_nothing_acknowledged() {
    let disk = Tmpfs::mount("4m");
    let store = disk.path("store");
    let engine = Engine::open(&store, EngineConfig::default()).unwrap();

    // A long poll on an empty pool, waiting when the store fails.
    let poller = engine.clone();
    let poll = std::thread::spawn(move || {
        let started = Instant::now();
        let result = poller.lease("empty", None, "w", 1, Duration::from_secs(30));
        (result.map(|l| l.len()), started.elapsed())
    });

    let mut acked = Vec::new();
    let failed_at = loop {
        let name = format!("t{}", acked.len());
        let submission = Submission::task("default", &name, padded_task(16 << 10));
        let id = submission.id.clone();
        match engine.submit(vec![submission]) {
            Ok(()) => acked.push(id),
            Err(EngineError::StoreFailed(reason)) => {
                assert!(reason.contains("No space left on device"), "{reason}");
                break Instant::now();
            }
            Err(other) => panic!("expected StoreFailed, got: {other}"),
        }
        assert!(acked.len() < 2000, "a 4 MiB disk never filled up");
    };
    assert!(
        acked.len() > 10,
        "the disk filled too early: {}",
        acked.len()
    );

    // Everything after the failure is refused at once, reads included:
    // memory may hold the failed decision, which the disk does not.
    let err = engine.status(&acked[0]).unwrap_err();
    assert!(matches!(err, EngineError::StoreFailed(_)), "{err}");
    assert!(engine.health().is_err());
    let t0 = Instant::now();
    let err = engine
        .lease("default", None, "w", 8, Duration::from_secs(10))
        .unwrap_err();
    assert!(matches!(err, EngineError::StoreFailed(_)), "{err}");
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    let (polled, _) = poll.join().unwrap();
    assert!(
        matches!(polled, Err(EngineError::StoreFailed(_))),
        "{polled:?}"
    );
    assert!(
        failed_at.elapsed() < Duration::from_secs(5),
        "the long poll waited {:?} after the failure",
        failed_at.elapsed()
    );

    // Closing a failed store must not hang (sled's own flush can).
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        drop(engine);
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("dropping the engine after a failed write hung");

    let roomy = tempfile::tempdir().unwrap();
    copy_store(&store, roomy.path());
    let engine = Engine::open(&roomy.path().join("store"), EngineConfig::default()).unwrap();
    let names = engine.objects().unwrap();
    for id in &acked {
        assert!(names.contains(id), "{id} was acknowledged, then lost");
        engine.status(id).unwrap();
    }
}

/// 200,000 squares collected: 10,000 kept in order, the count exact.
const COLLECT: &str = "apiVersion: kontinuum.dev/v1alpha1
kind: HierarchicalFuture
metadata: {name: big}
spec:
  map:
    source: {range: {start: 0, end: 200000}}
    function: {function: std.square}
    shardSize: 100
    fanout: 8
    reduce: collect
";

fn run(file: &Path, data: &Path) -> Command {
    let mut cmd = Command::new(KONTINUUM);
    cmd.args(["run", "--workers", "2", "-o", "json", "--data"])
        .arg(data)
        .arg(file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn check_exact(stdout: &[u8]) {
    let object: Value = serde_json::from_slice(stdout).unwrap();
    let status = &object["status"];
    assert_eq!(status["phase"], "Succeeded", "{}", status["phase"]);
    let result = &status["result"];
    assert_eq!(result["count"], 200_000);
    assert_eq!(result["truncated"], true);
    let expected: Vec<Value> = (0..10_000u64).map(|i| json!(i * i)).collect();
    assert_eq!(result["items"].as_array().unwrap(), &expected);
    assert_eq!(status["progress"]["done"], 200_000);
}

/// The collect manifest in a scratch directory, and a store on a fresh
/// 8 MiB disk.
fn collect_job() -> (Tmpfs, tempfile::TempDir, PathBuf, PathBuf) {
    let disk = Tmpfs::mount("8m");
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("collect.yaml");
    std::fs::write(&file, COLLECT).unwrap();
    let store = disk.path("store");
    (disk, work, file, store)
}

/// The store copied to a disk with room, and the same run to the end.
fn resume_on_a_roomy_copy(file: &Path, store: &Path) {
    let roomy = tempfile::tempdir().unwrap();
    copy_store(store, roomy.path());
    let out = run(file, &roomy.path().join("store")).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    check_exact(&out.stdout);
}

#[test]
fn a_full_disk_ends_the_run_with_a_message_and_a_copy_with_room_completes_it() {
    let (_disk, _work, file, store) = collect_job();
    let mut child = run(&file, &store).spawn().unwrap();
    let status = wait_bounded(&mut child, Duration::from_secs(60), "run on a full disk");
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(1), "stderr:\n{stderr}");
    assert!(
        stderr.contains("cannot write any more")
            && stderr.contains("No space left on device")
            && stderr.contains("rerun the same command to resume"),
        "stderr:\n{stderr}"
    );
    resume_on_a_roomy_copy(&file, &store);
}

#[test]
fn ctrl_c_on_a_filling_disk_is_honoured_promptly() {
    let (_disk, _work, file, store) = collect_job();

    let mut child = run(&file, &store).spawn().unwrap();
    let lines = stderr_lines(&mut child);
    // The first progress line: the run is under way and filling the disk.
    let first = lines.recv_timeout(Duration::from_secs(60));
    assert!(first.is_ok(), "no progress line within 60 s");
    signal(&child, "INT");
    let status = wait_bounded(&mut child, Duration::from_secs(15), "run after SIGINT");
    let said: Vec<String> = lines.try_iter().collect();
    // Interrupted (130), or the store had failed first (1): both are
    // prompt; what must not happen is a run that ignores the signal.
    assert!(
        matches!(status.code(), Some(130 | 1)),
        "{status:?}\n{}",
        said.join("\n")
    );
    resume_on_a_roomy_copy(&file, &store);
}

/// One HTTP/1.1 request on its own connection: (status, JSON body).
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not HTTP: {answer}"));
    let json = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (code, json)
}

fn serve(store: &Path) -> (Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(KONTINUUM)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(store)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "kontinuum serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (child, port)
}

fn padded_manifest(i: usize) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
           "metadata": {"name": format!("t{i}")},
           "spec": {"call": {"function": "std.echo", "args": {"pad": "x".repeat(16 << 10)}}}})
}

#[test]
fn serve_answers_503_with_the_reason_and_a_restart_with_room_recovers() {
    let disk = Tmpfs::mount("8m");
    // Room to free later, as an operator would.
    let filler = disk.path("filler");
    std::fs::write(&filler, vec![0u8; 3 << 20]).unwrap();
    let store = disk.path("store");
    let (mut server, port) = serve(&store);

    let mut acked = 0;
    let refusal = loop {
        let (code, body) = http(
            port,
            "POST",
            "/v1/objects",
            Some(&json!({"objects": [padded_manifest(acked)]})),
        );
        match code {
            201 => acked += 1,
            503 => break body,
            other => panic!("unexpected {other}: {body}"),
        }
        assert!(acked < 2000, "an 8 MiB disk never filled up");
    };
    assert_eq!(refusal["error"], "store_failed", "{refusal}");
    let message = refusal["message"].as_str().unwrap();
    assert!(
        message.contains("No space left on device") && message.contains("restart"),
        "{message}"
    );
    // Every later call says the same at once, the probe too.
    let t0 = Instant::now();
    let lease = json!({"worker": "w", "pool": "default", "max": 1, "waitMs": 20000});
    let (code, body) = http(port, "POST", "/v1/lease", Some(&lease));
    assert_eq!((code, body["error"].as_str()), (503, Some("store_failed")));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    let (code, _) = http(port, "GET", "/healthz", None);
    assert_eq!(code, 503, "a liveness probe sees the failure");
    let (code, _) = http(port, "GET", "/v1/objects/default/task/t0", None);
    assert_eq!(code, 503);

    signal(&server, "TERM");
    let status = wait_bounded(&mut server, Duration::from_secs(15), "serve after SIGTERM");
    assert!(status.success(), "{status:?}");

    // Room again, and a restart: everything acknowledged is there.
    std::fs::remove_file(&filler).unwrap();
    let (mut server, port) = serve(&store);
    let (code, _) = http(port, "GET", "/healthz", None);
    assert_eq!(code, 200);
    for i in [0, acked / 2, acked - 1] {
        let (code, body) = http(port, "GET", &format!("/v1/objects/default/task/t{i}"), None);
        assert_eq!(code, 200, "t{i} was acknowledged: {body}");
    }
    let (code, body) = http(
        port,
        "POST",
        "/v1/objects",
        Some(&json!({"objects": [padded_manifest(acked + 1)]})),
    );
    assert_eq!(code, 201, "{body}");
    signal(&server, "TERM");
    wait_bounded(&mut server, Duration::from_secs(15), "serve after SIGTERM");
}
