//! Helpers for the `kontinuum serve` tests: a server process on a free
//! loopback port (the binary under test, so not kontinuum-testkit's server
//! in process), `kontinuum-worker` processes next to it, and running the
//! CLI against them. Every process is killed when its handle drops.

#![allow(dead_code)]

use kontinuum_testkit::Process;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const KONTINUUM: &str = env!("CARGO_BIN_EXE_kontinuum");

pub struct Server {
    pub url: String,
    pub process: Process,
    pub dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `kontinuum serve` on a free loopback port, ready to answer.
pub fn serve(token: Option<&str>) -> Server {
    start(tempfile::tempdir().unwrap(), token)
}

/// Stops `server` with SIGTERM (it must exit 0) and serves its store again.
pub fn restart(server: Server) -> Server {
    let Server {
        mut process, dir, ..
    } = server;
    process.sigterm();
    let status = process.wait().unwrap();
    assert_eq!(status.code(), Some(0), "kontinuum serve after SIGTERM");
    start(dir, None)
}

/// `kontinuum serve` over the store in `dir`/store (made if missing).
pub fn start(dir: tempfile::TempDir, token: Option<&str>) -> Server {
    let port = free_port();
    let mut cmd = Command::new(KONTINUUM);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--data"])
        .arg(dir.path().join("store"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(token) = token {
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        cmd.arg("--token-file").arg(file);
    }
    let process = Process::spawn(&mut cmd);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "kontinuum serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Server {
        url: format!("http://127.0.0.1:{port}"),
        process,
        dir,
    }
}

/// The `kontinuum-worker` binary next to `kontinuum`, built (or brought up
/// to date) by cargo once per test process: it is another crate's binary,
/// which cargo does not build for this crate's tests.
pub fn worker_binary() -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(build_worker).clone()
}

fn build_worker() -> PathBuf {
    let bin_dir = Path::new(KONTINUUM).parent().unwrap();
    let worker = bin_dir.join(format!("kontinuum-worker{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args([
        "build",
        "-p",
        "kontinuum-worker",
        "--bin",
        "kontinuum-worker",
    ]);
    if bin_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build
        .status()
        .expect("cannot run cargo to build kontinuum-worker");
    assert!(
        status.success() && worker.is_file(),
        "`cargo build -p kontinuum-worker --bin kontinuum-worker` failed or did not produce {}",
        worker.display()
    );
    worker
}

/// A `kontinuum-worker` process serving pool `default` of `server`.
pub fn worker(server: &Server) -> Process {
    Process::spawn(&mut kontinuum_testkit::worker(
        worker_binary(),
        &server.url,
        "default",
        &[],
    ))
}

pub struct Cli {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kontinuum ARGS... --server URL`.
pub fn cli(server: &Server, args: &[&str]) -> Cli {
    let out: Output = Command::new(KONTINUUM)
        .args(args)
        .args(["--server", &server.url])
        .output()
        .unwrap();
    Cli {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}
