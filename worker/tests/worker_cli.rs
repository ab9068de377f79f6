//! The `kontinuum-worker` command line: what it says when it cannot start.
//! (Serving work is in remote_e2e.rs.)

use std::process::{Command, Output};

fn worker(args: &[&str]) -> Output {
    worker_env(args, &[])
}

/// The worker with `vars` set in its environment.
fn worker_env(args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kontinuum-worker"))
        .args(args)
        .envs(vars.iter().copied())
        .env("RUST_LOG", "error")
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_token_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-token");
    let out = worker(&[
        "--server",
        "http://127.0.0.1:9",
        "--token-file",
        missing.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot read --token-file {}", missing.display())),
        "{err}"
    );
}

#[test]
fn a_server_that_is_not_a_url_is_refused_before_serving() {
    let out = worker(&["--server", "localhost:7070"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot talk to localhost:7070") && err.contains("expected http://HOST:PORT"),
        "{err}"
    );
}

#[test]
fn flags_come_from_kontinuum_variables() {
    // No --server: KONTINUUM_SERVER supplies it (and is then refused as no URL).
    let out = worker_env(&[], &[("KONTINUUM_SERVER", "localhost:7070")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot talk to localhost:7070"),
        "{}",
        stderr(&out)
    );
    // A bad KONTINUUM_GRACE is refused like a bad --grace.
    let out = worker_env(
        &["--server", "http://127.0.0.1:9"],
        &[("KONTINUUM_GRACE", "soon")],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("'soon' is not a duration"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn grace_takes_a_duration_and_refuses_other_words() {
    let out = worker(&["--server", "http://127.0.0.1:9", "--grace", "10 minutes"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--grace") && err.contains("is not a duration") && err.contains("1h30m"),
        "{err}"
    );
    let out = worker(&["--server", "http://127.0.0.1:9", "--concurrency", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn a_metrics_address_in_use_is_named() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = worker(&["--server", "http://127.0.0.1:9", "--metrics-listen", &addr]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("cannot serve --metrics-listen {addr}")),
        "{err}"
    );
}

#[test]
fn install_into_copies_a_runnable_worker_and_needs_no_server() {
    let dir = tempfile::tempdir().unwrap();
    let out = worker(&["--install-into", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let copy = dir.path().join("kontinuum-worker");
    let version = Command::new(&copy).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("kontinuum-worker "));
    // Run again over the copy (a restarted init container): still fine.
    assert!(
        worker(&["--install-into", dir.path().to_str().unwrap()])
            .status
            .success()
    );
    let missing = worker(&["--install-into", "/no/such/dir"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("--install-into /no/such/dir"),
        "{}",
        stderr(&missing)
    );
    // Without it a server is still required.
    let bare = worker(&[]);
    assert_eq!(bare.status.code(), Some(2));
    assert!(stderr(&bare).contains("--server"), "{}", stderr(&bare));
}
