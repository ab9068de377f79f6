//! The Python example end to end: a server (in this process), one
//! `kontinuum-worker --handler 'python3 examples/python/seed.py'` process,
//! and the example manifests: the seed's examples, a map over 100,000 items
//! summed exactly, a Python exception retried and then Failed with its
//! message, and a handler process killed with SIGKILL mid-call (the call
//! runs again, the result is exact).

use kontinuum_api::ObjectId;
use kontinuum_server::Client;
use kontinuum_testkit::{Process, TestServer};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The worker with the example's handler; its log goes to `log`.
fn worker(url: &str, log: &Path, concurrency: usize) -> Process {
    let mut command = kontinuum_testkit::worker(
        env!("CARGO_BIN_EXE_kontinuum-worker"),
        url,
        "default",
        &[
            "--concurrency",
            &concurrency.to_string(),
            "--handler",
            "python3 examples/python/seed.py",
        ],
    );
    command
        .current_dir(root())
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(std::fs::File::create(log).unwrap()));
    Process::spawn(&mut command)
}

/// The documents of an example manifest, as JSON.
fn manifest(name: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("examples/python").join(name)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| {
            let yaml = serde_yaml::Value::deserialize(doc).unwrap();
            serde_json::to_value(yaml).unwrap()
        })
        .collect()
}

use serde::Deserialize;

async fn wait(client: &Client, names: &[&str], limit: Duration) -> Vec<Value> {
    let ids: Vec<ObjectId> = names
        .iter()
        .map(|n| ObjectId::parse_in(n, "default").unwrap())
        .collect();
    let views = tokio::time::timeout(limit, client.wait(&ids, Duration::from_millis(50)))
        .await
        .unwrap_or_else(|_| panic!("{names:?} not finished within {limit:?}"))
        .unwrap();
    views.into_iter().map(|v| v.status).collect()
}

async fn wait_for_functions(client: &Client, want: &str) -> Vec<String> {
    let t = Instant::now();
    loop {
        let workers = client.workers().await.unwrap();
        if let Some(w) = workers
            .iter()
            .find(|w| w.functions.iter().any(|f| f == want))
        {
            return w.functions.clone();
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no worker registered {want}: {workers:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_examples_in_python_run_through_the_handler() {
    let served = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let _worker = worker(served.url(), &log, 8);
    let client = served.client();
    // The handler's functions join the worker's roster, beside std.*.
    let functions = wait_for_functions(&client, "py.do_sum").await;
    assert!(functions.iter().any(|f| f == "std.echo"), "{functions:?}");
    assert!(functions.iter().any(|f| f == "py.fan_out"), "{functions:?}");

    client.submit(manifest("seed.yaml")).await.unwrap();
    // Continuations exist once their task has finished.
    wait(
        &client,
        &[
            "task/py-sum-4-5",
            "task/py-sum-closure",
            "task/py-make-adder",
        ],
        Duration::from_secs(60),
    )
    .await;
    let s = wait(
        &client,
        &[
            "task/py-sum-4-5.on-success",
            "task/py-sum-closure.on-success",
            "task/py-make-adder",
            "task/py-make-adder.on-success",
            "task/py-update-1234-a",
            "task/py-update-1234-b",
            "task/py-update-1234-c",
            "task/py-update-5432",
            "future/py-fan-out",
        ],
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(s[0]["result"], json!(9), "{}", s[0]);
    assert_eq!(s[1]["result"], json!(16), "{}", s[1]);
    // A function value crossed from one Python call to the next.
    assert_eq!(
        s[2]["result"],
        json!({"$fn": {"function": "py.add_c", "args": {"c": 10}}}),
        "{}",
        s[2]
    );
    assert_eq!(s[3]["result"], json!(15), "{}", s[3]);
    let phases: Vec<&str> = s[4..7]
        .iter()
        .map(|v| v["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases.iter().filter(|p| **p == "Succeeded").count(),
        1,
        "{phases:?}"
    );
    assert_eq!(
        phases.iter().filter(|p| **p == "Merged").count(),
        2,
        "{phases:?}"
    );
    assert_eq!(s[7]["result"], json!("updated 5432"), "{}", s[7]);
    assert_eq!(s[8]["phase"], "Succeeded", "{}", s[8]);
    let fanned = serde_json::to_string(&s[8]["result"]).unwrap();
    for square in [0, 1, 4, 81] {
        assert!(fanned.contains(&square.to_string()), "{fanned}");
    }

    // What the functions print is in the worker's log with the call id.
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("DoSum gave 9"))
        .unwrap_or_else(|| panic!("no print in the log:\n{text}"));
    assert!(
        line.contains("call=") && line.contains("stream=\"stdout\""),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_over_100000_items_calls_python_and_sums_exactly() {
    let served = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _worker = worker(served.url(), &dir.path().join("worker.log"), 8);
    let client = served.client();
    client.submit(manifest("map-sum.yaml")).await.unwrap();
    let s = wait(&client, &["future/py-squares"], Duration::from_secs(300)).await;
    let n: i128 = 100_000;
    assert_eq!(s[0]["phase"], "Succeeded", "{}", s[0]);
    assert_eq!(
        s[0]["result"],
        json!((n - 1) * n * (2 * n - 1) / 6),
        "{}",
        s[0]
    );
    assert_eq!(s[0]["progress"]["done"], json!(100_000), "{}", s[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_exception_is_retried_then_failed_with_its_message() {
    let served = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let _worker = worker(served.url(), &dir.path().join("worker.log"), 2);
    let client = served.client();
    client.submit(manifest("fail.yaml")).await.unwrap();
    let s = wait(&client, &["task/py-fails"], Duration::from_secs(60)).await;
    assert_eq!(s[0]["phase"], "Failed", "{}", s[0]);
    assert_eq!(s[0]["attempts"], json!(3), "{}", s[0]);
    assert_eq!(
        s[0]["error"]["message"],
        json!("ValueError: the ledger is locked"),
        "{}",
        s[0]
    );
    // And Permanent is not retried.
    let refuse = json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "py-refuses"},
        "spec": {"call": {"function": "py.refuse", "args": {"reason": "no such account"}}}});
    client.submit(vec![refuse]).await.unwrap();
    let s = wait(&client, &["task/py-refuses"], Duration::from_secs(60)).await;
    assert_eq!(s[0]["phase"], "Failed", "{}", s[0]);
    assert_eq!(s[0]["attempts"], json!(1), "{}", s[0]);
    assert_eq!(
        s[0]["error"]["message"],
        json!("no such account"),
        "{}",
        s[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_process_killed_mid_call_runs_the_call_again() {
    let served = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let mut worker = worker(served.url(), &log, 2);
    let client = served.client();
    let pidfile = dir.path().join("pid");
    let task = json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
        "metadata": {"name": "py-killed"},
        "spec": {"call": {"function": "py.slow_square",
                          "args": {"item": 12345, "pidfile": pidfile.to_str().unwrap()}},
                 "retry": {"maxAttempts": 3, "backoff": {"initial": "100ms"}}}});
    client.submit(vec![task]).await.unwrap();
    let t = Instant::now();
    let pid: i32 = loop {
        if let Ok(text) = std::fs::read_to_string(&pidfile)
            && let Ok(pid) = text.trim().parse()
        {
            break pid;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the call never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // SAFETY (test): a plain kill(2) of the handler process the call runs in.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let s = wait(&client, &["task/py-killed"], Duration::from_secs(60)).await;
    assert_eq!(s[0]["phase"], "Succeeded", "{}", s[0]);
    assert_eq!(s[0]["result"], json!(12345i64 * 12345), "{}", s[0]);
    assert_eq!(s[0]["attempts"], json!(2), "{}", s[0]);
    // The worker itself lived through it, and says what happened.
    assert!(worker.try_wait().unwrap().is_none(), "the worker exited");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("(pid {pid}) was killed by signal 9")),
        "no log line for the kill:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_handler_leaves_the_worker_serving_its_own_functions() {
    let served = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("worker.log");
    let mut command = kontinuum_testkit::worker(
        env!("CARGO_BIN_EXE_kontinuum-worker"),
        served.url(),
        "default",
        &[
            "--handler",
            "python3 -c 'import sys; sys.exit(\"no config\")'",
        ],
    );
    command
        .env("RUST_LOG", "info")
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    let mut worker = Process::spawn(&mut command);
    let client = served.client();
    let tasks = vec![
        json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task", "metadata": {"name": "echo"},
               "spec": {"call": {"function": "std.echo", "args": {"x": 1}}}}),
        json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task", "metadata": {"name": "py"},
               "spec": {"call": {"function": "py.anything"}, "retry": {"maxAttempts": 1}}}),
    ];
    client.submit(tasks).await.unwrap();
    let s = wait(&client, &["task/echo", "task/py"], Duration::from_secs(90)).await;
    assert_eq!(s[0]["result"], json!({"x": 1}), "{}", s[0]);
    assert_eq!(s[1]["phase"], "Failed", "{}", s[1]);
    let message = s[1]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("exited with code 1 before its hello") && message.contains("no config"),
        "{message}"
    );
    assert!(worker.try_wait().unwrap().is_none(), "the worker exited");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("handler process failed"), "{text}");
}
