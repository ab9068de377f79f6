//! `kontinuum serve` takes every flag from a `KONTINUUM_*` variable too, as
//! containers configure it.

use kontinuum_testkit::Process;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const KONTINUUM: &str = env!("CARGO_BIN_EXE_kontinuum");

fn get_tasks(url: &str, token_file: Option<&Path>) -> Output {
    let mut cmd = Command::new(KONTINUUM);
    cmd.args(["get", "tasks", "--server", url]);
    if let Some(f) = token_file {
        cmd.arg("--token-file").arg(f);
    }
    cmd.output().unwrap()
}

#[test]
fn serve_reads_listen_data_and_token_file_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "env-token\n").unwrap();
    let store = dir.path().join("store");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _serve = Process::spawn(
        Command::new(KONTINUUM)
            .arg("serve")
            .env("KONTINUUM_LISTEN", format!("127.0.0.1:{port}"))
            .env("KONTINUUM_DATA", &store)
            .env("KONTINUUM_TOKEN_FILE", &token)
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "kontinuum serve did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(store.is_dir(), "the store is where KONTINUUM_DATA says");
    let url = format!("http://127.0.0.1:{port}");
    let with = get_tasks(&url, Some(&token));
    assert_eq!(
        with.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    // The token from KONTINUUM_TOKEN_FILE is required.
    let without = get_tasks(&url, None);
    assert_eq!(without.status.code(), Some(1));
}
