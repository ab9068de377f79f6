//! A handler that misbehaves fails only its own calls (retryable, with a
//! message quoting what it did), is started again, and never takes the
//! worker down. The handler is worker/tests/handlers/misbehave.py, written
//! against the raw protocol; its first process misbehaves, later ones work.

use kontinuum_worker::handler::{HandlerConfig, HandlerPool};
use kontinuum_worker::{Args, Ctx, FnError, Registry};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

struct Setup {
    pool: Arc<HandlerPool>,
    ctx: Ctx,
    _dir: tempfile::TempDir,
}

fn config(command: Vec<String>, processes: usize) -> HandlerConfig {
    let mut config = HandlerConfig::new(command, processes);
    config.hello_timeout = Duration::from_secs(60);
    config.abandon_grace = Duration::from_millis(300);
    // A loaded machine takes seconds to start python3; calls wait for it.
    config.ready_wait = Duration::from_secs(60);
    config.restart_initial = Duration::from_millis(50);
    config.restart_max = Duration::from_millis(200);
    config
}

fn start_with(command: Vec<String>, processes: usize, dir: tempfile::TempDir) -> Setup {
    start_configured(config(command, processes), dir)
}

fn start_configured(config: HandlerConfig, dir: tempfile::TempDir) -> Setup {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let pool = HandlerPool::start(config);
    let mut registry = Registry::new();
    registry.register_sync("rust.ok", |_, _| Ok(json!("still serving")));
    registry.set_dynamic(pool.functions());
    Setup {
        ctx: Ctx::detached(Arc::new(registry)),
        pool,
        _dir: dir,
    }
}

/// The misbehaving handler in `mode`, one process.
fn start(mode: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/handlers/misbehave.py");
    let marker = dir.path().join("started").display().to_string();
    let command = ["python3", script, mode, &marker]
        .map(String::from)
        .to_vec();
    start_with(command, 1, dir)
}

async fn call(ctx: &Ctx, function: &str, args: Value) -> Result<Value, FnError> {
    let map = args.as_object().cloned().unwrap();
    tokio::time::timeout(
        Duration::from_secs(120),
        ctx.invoke(function, Args::new(&map)).resolve(),
    )
    .await
    .expect("a call must end")
}

/// The first call fails with `want` in its message; the next one, on a
/// new process, succeeds; the worker's own functions answered throughout.
async fn fails_then_recovers(mode: &str, want: &[&str]) -> Setup {
    let s = start(mode);
    let err = call(&s.ctx, "t.echo", json!({"n": 1})).await.unwrap_err();
    assert!(!err.permanent, "{mode}: {err:?}");
    for w in want {
        assert!(
            err.message.contains(w),
            "{mode}: {w:?} not in {:?}",
            err.message
        );
    }
    assert_eq!(
        call(&s.ctx, "rust.ok", json!({})).await,
        Ok(json!("still serving"))
    );
    assert_eq!(
        call(&s.ctx, "t.echo", json!({"n": 2})).await,
        Ok(json!({"n": 2}))
    );
    s
}

#[tokio::test]
async fn a_garbage_line_fails_its_call_quoting_it() {
    fails_then_recovers(
        "garbage",
        &[
            "handler process 0",
            "wrote a line that is not JSON",
            "Traceback? no, just garbage",
            "while running 't.echo' (call 1)",
            "its stderr ended with: working on call 1",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_reply_for_an_unknown_id_fails_the_waiting_call() {
    fails_then_recovers(
        "unknown-id",
        &["replied for call 1001, which is not waiting for a reply"],
    )
    .await;
}

#[tokio::test]
async fn a_reply_over_the_size_limit_is_refused_without_buffering_it() {
    fails_then_recovers(
        "huge",
        &[
            "wrote a line over the 8388608-byte limit",
            "{\\\"type\\\":\\\"result\\\"",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_crash_mid_call_fails_the_call_with_the_exit_and_stderr() {
    fails_then_recovers(
        "crash",
        &[
            "exited with code 9 while running 't.echo' (call 1)",
            "working on call 1",
        ],
    )
    .await;
}

#[tokio::test]
async fn a_hello_with_no_functions_is_refused_and_the_process_replaced() {
    let s = start("empty-hello");
    // The call waits for a process that said a proper hello: the second one.
    assert_eq!(
        call(&s.ctx, "t.echo", json!({"n": 1})).await,
        Ok(json!({"n": 1}))
    );
    let failure = s.pool.last_failure().unwrap();
    assert!(
        failure.contains("the list is empty; a handler must serve at least one"),
        "{failure}"
    );
}

#[tokio::test]
async fn a_handler_that_exits_at_once_fails_calls_with_its_stderr_while_rust_functions_serve() {
    let dir = tempfile::tempdir().unwrap();
    let command = [
        "python3",
        "-c",
        "import sys; sys.stderr.write('no config here\\n'); sys.exit(3)",
    ]
    .map(String::from)
    .to_vec();
    // Short: the call is to fail, after waiting this long for a process.
    let mut config = config(command, 2);
    config.ready_wait = Duration::from_secs(3);
    let s = start_configured(config, dir);
    assert!(
        !s.pool.wait_started(Duration::from_secs(60)).await,
        "it never says hello"
    );
    assert_eq!(
        call(&s.ctx, "rust.ok", json!({})).await,
        Ok(json!("still serving"))
    );
    let err = call(&s.ctx, "py.anything", json!({})).await.unwrap_err();
    assert!(!err.permanent, "{err:?}");
    for want in [
        "no handler process was ready to run 'py.anything'",
        "exited with code 3 before its hello",
        "its stderr ended with: no config here",
    ] {
        assert!(
            err.message.contains(want),
            "{want:?} not in {:?}",
            err.message
        );
    }
}

#[tokio::test]
async fn a_call_hanging_past_its_timeout_gets_its_process_killed() {
    let s = start("hang");
    assert!(s.pool.wait_started(Duration::from_secs(60)).await);
    // The runtime drops a call at the task's timeout, as this does.
    let map = json!({"n": 1}).as_object().cloned().unwrap();
    let hung = tokio::time::timeout(
        Duration::from_millis(500),
        s.ctx.invoke("t.echo", Args::new(&map)).resolve(),
    )
    .await;
    assert!(hung.is_err(), "the call must still be running: {hung:?}");
    let pid: u64 = serde_json::from_value(call(&s.ctx, "t.pid", json!({})).await.unwrap()).unwrap();
    assert_ne!(pid, 0);
    let failure = s.pool.last_failure().unwrap();
    assert!(
        failure.contains(
            "did not end call 1 of 't.echo' within 300 ms after the worker stopped waiting"
        ),
        "{failure}"
    );
}

#[tokio::test]
async fn unknown_functions_are_permanent_once_the_roster_is_known() {
    let s = start("ok");
    assert_eq!(
        call(&s.ctx, "t.echo", json!({"n": 1})).await,
        Ok(json!({"n": 1}))
    );
    assert_eq!(s.pool.roster(), ["t.echo", "t.pid"]);
    let err = call(&s.ctx, "t.nope", json!({})).await.unwrap_err();
    assert!(
        err.permanent && err.message.contains("'t.nope' is not registered"),
        "{err:?}"
    );
    assert!(s.pool.last_failure().is_none());
}

#[tokio::test]
async fn many_calls_at_once_share_the_processes() {
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/handlers/misbehave.py");
    let marker = dir.path().join("started");
    std::fs::write(&marker, "").unwrap();
    let command = ["python3", script, "ok", marker.to_str().unwrap()]
        .map(String::from)
        .to_vec();
    let s = start_with(command, 3, dir);
    let ctx = s.ctx.clone();
    let calls = (0..300).map(|i| {
        let ctx = ctx.clone();
        tokio::spawn(async move { call(&ctx, "t.echo", json!({"i": i})).await })
    });
    let results = futures::future::join_all(calls).await;
    for (i, r) in results.into_iter().enumerate() {
        assert_eq!(r.unwrap(), Ok(json!({"i": i})));
    }
    s.pool.shutdown().await;
}
