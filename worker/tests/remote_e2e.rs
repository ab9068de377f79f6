//! Real `kontinuum-worker` processes against the HTTP server (started in
//! this process): exact results, a worker killed with SIGKILL mid-task, a
//! graceful SIGTERM, and workers that start before the server does.

use kontinuum_api::ObjectId;
use kontinuum_server::Client;
use kontinuum_testkit::{Process, ServerOptions, TestServer};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "e2e-token";

/// The server on `addr` with a short lease, so a killed worker's tasks come
/// back within about a second.
async fn serve(addr: SocketAddr) -> TestServer {
    let options = ServerOptions::default()
        .addr(addr)
        .token(TOKEN)
        .lease(Duration::from_secs(1));
    TestServer::with(options).await
}

fn worker(url: &str, dir: &Path, concurrency: usize) -> Process {
    // Plain seconds, as --grace took before it took durations.
    worker_with_grace(url, dir, concurrency, "10")
}

fn worker_with_grace(url: &str, dir: &Path, concurrency: usize, grace: &str) -> Process {
    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let concurrency = concurrency.to_string();
    let mut command = kontinuum_testkit::worker(
        env!("CARGO_BIN_EXE_kontinuum-worker"),
        url,
        "default",
        &["--grace", grace, "--concurrency", &concurrency],
    );
    command.arg("--token-file").arg(&token_file);
    Process::spawn(&mut command)
}

fn future(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
           "metadata": {"name": name}, "spec": spec})
}

fn task(name: &str, call: Value) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
           "metadata": {"name": name}, "spec": {"call": call}})
}

/// `task/x` or `future/x` in the namespace "default".
fn oid(name: &str) -> ObjectId {
    ObjectId::parse_in(name, "default").unwrap()
}

async fn wait(client: &Client, names: &[&str], limit: Duration) -> Vec<Value> {
    let names: Vec<ObjectId> = names.iter().map(|n| oid(n)).collect();
    let views = tokio::time::timeout(limit, client.wait(&names, Duration::from_millis(20)))
        .await
        .unwrap_or_else(|_| panic!("{names:?} not finished within {limit:?}"))
        .unwrap();
    views.into_iter().map(|v| v.status).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_run_a_map_to_the_exact_result() {
    let served = serve("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let _a = worker(served.url(), dir.path(), 4);
    let _b = worker(served.url(), dir.path(), 4);
    let client = served.client();
    let n: i128 = 200_000;
    client
        .submit(vec![
            future(
                "squares",
                json!({"map": {
                "source": {"range": {"start": 0, "end": n}},
                "function": {"function": "std.square"},
                "shardSize": 1000, "reduce": "sum"}}),
            ),
            task(
                "sum",
                json!({"function": "std.sum", "args": {"a": 4, "b": 5}}),
            ),
        ])
        .await
        .unwrap();
    let statuses = wait(
        &client,
        &["future/squares", "task/sum"],
        Duration::from_secs(60),
    )
    .await;
    let expected = (n - 1) * n * (2 * n - 1) / 6;
    assert_eq!(statuses[0]["phase"], "Succeeded", "{}", statuses[0]);
    assert_eq!(statuses[0]["result"].to_string(), expected.to_string());
    assert_eq!(statuses[1]["result"], 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_tasks_come_back_after_the_lease_expires() {
    let served = serve("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = served.client();
    let mut doomed = worker(served.url(), dir.path(), 4);
    client
        .submit(vec![
            task(
                "nap",
                json!({"function": "std.sleep", "args": {"ms": 1500}}),
            ),
            future(
                "naps",
                json!({"map": {
                "source": {"items": (0..24).collect::<Vec<_>>()},
                "function": {"function": "std.sleep", "args": {"ms": 300}},
                "shardSize": 1, "reduce": "count"}}),
            ),
        ])
        .await
        .unwrap();
    // Wait until the doomed worker holds the long task, then SIGKILL it.
    let t0 = Instant::now();
    loop {
        let nap = client.get(&oid("task/nap")).await.unwrap();
        if nap.status["phase"] == "Running" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "never leased: {}",
            nap.status
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    doomed.kill();
    let killed = Instant::now();
    let _rescuer = worker(served.url(), dir.path(), 4);
    let statuses = wait(
        &client,
        &["task/nap", "future/naps"],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(statuses[0]["phase"], "Succeeded", "{}", statuses[0]);
    assert_eq!(
        statuses[0]["attempts"], 2,
        "the first attempt died with its worker"
    );
    // The lease (1 s) had to expire before the task could run again.
    assert!(
        killed.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(statuses[1]["phase"], "Succeeded", "{}", statuses[1]);
    assert_eq!(statuses[1]["result"], 24, "each item counted exactly once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_running_work_then_exits() {
    let served = serve("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = served.client();
    let mut w = worker(served.url(), dir.path(), 2);
    client
        .submit(vec![task(
            "nap",
            json!({"function": "std.sleep", "args": {"ms": 1000}}),
        )])
        .await
        .unwrap();
    wait_running(&client, "task/nap").await;
    w.sigterm();
    let exit = tokio::task::spawn_blocking(move || (w.wait(), w))
        .await
        .unwrap()
        .0
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    let nap = client.get(&oid("task/nap")).await.unwrap().status;
    assert_eq!(
        nap["phase"], "Succeeded",
        "finished within the grace: {nap}"
    );
    assert_eq!(nap["attempts"], 1);
}

async fn wait_running(client: &Client, name: &str) {
    let t0 = Instant::now();
    while client.get(&oid(name)).await.unwrap().status["phase"] != "Running" {
        assert!(t0.elapsed() < Duration::from_secs(20), "{name} never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_back_what_the_grace_cannot_finish() {
    let served = serve("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let client = served.client();
    let mut w = worker_with_grace(served.url(), dir.path(), 2, "1s");
    client
        .submit(vec![task(
            "long",
            json!({"function": "std.sleep", "args": {"ms": 4000}}),
        )])
        .await
        .unwrap();
    wait_running(&client, "task/long").await;
    w.sigterm();
    let t0 = Instant::now();
    let exit = tokio::task::spawn_blocking(move || (w.wait(), w))
        .await
        .unwrap()
        .0
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Released, not failed: queued again with no attempt spent (a lease
    // expiry or a failure would leave attempts at 1).
    let back = client
        .get(&kontinuum_api::ObjectId::task("default", "long"))
        .await
        .unwrap()
        .status;
    assert_eq!(back["phase"], "Queued", "{back}");
    assert_eq!(back["attempts"], 0, "{back}");
    let _next = worker(served.url(), dir.path(), 2);
    let statuses = wait(&client, &["task/long"], Duration::from_secs(30)).await;
    assert_eq!(statuses[0]["phase"], "Succeeded", "{}", statuses[0]);
    assert_eq!(statuses[0]["attempts"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_wait_for_a_server_that_is_not_up_yet() {
    // Find a free port, then leave it free for the server to come.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let dir = tempfile::tempdir().unwrap();
    let _w = worker(&url, dir.path(), 2);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let served = serve(addr).await;
    let client = served.client();
    client
        .submit(vec![task(
            "late",
            json!({"function": "std.echo", "args": {"x": 1}}),
        )])
        .await
        .unwrap();
    let statuses = wait(&client, &["task/late"], Duration::from_secs(30)).await;
    assert_eq!(statuses[0]["result"], json!({"x": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_stops_the_worker_with_a_message() {
    let served = serve("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("wrong");
    std::fs::write(&token_file, "not-the-token").unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_kontinuum-worker"))
        .args(["--server", served.url(), "--token-file"])
        .arg(&token_file)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let waited = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::task::spawn_blocking(move || child.wait_with_output()),
    )
    .await;
    let Ok(output) = waited else {
        let _ = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -9 {pid}"))
            .status();
        panic!("the worker kept running with a wrong token");
    };
    let output = output.unwrap().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wrong bearer token"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_that_denies_std_exec_refuses_its_calls_and_serves_the_rest() {
    let served = serve("127.0.0.1:0".parse().unwrap()).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut command = kontinuum_testkit::worker(
        env!("CARGO_BIN_EXE_kontinuum-worker"),
        served.url(),
        "default",
        &["--allow", "std.*", "--deny", "std.exec"],
    );
    command.arg("--token-file").arg(&token_file);
    let _worker = Process::spawn(&mut command);
    let client = served.client();
    client
        .submit(vec![
            task(
                "exec",
                json!({"function": "std.exec", "args": {"command": ["touch", dir.path().join("ran").display().to_string()]}}),
            ),
            task("sum", json!({"function": "std.sum", "args": {"a": 4, "b": 5}})),
        ])
        .await
        .unwrap();
    let statuses = wait(&client, &["task/exec", "task/sum"], Duration::from_secs(60)).await;
    assert_eq!(statuses[0]["phase"], "Failed", "{}", statuses[0]);
    assert_eq!(
        statuses[0]["error"]["message"],
        "function 'std.exec' is denied in this pool (deny 'std.exec' in the WorkerPool's spec.worker.functions, or --deny)"
    );
    assert!(!dir.path().join("ran").exists(), "the command never ran");
    assert_eq!(statuses[1]["result"], 9);
}
