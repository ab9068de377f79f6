//! The `kontinuum-seed-worker` binary serving the seed's functions to a real
//! server over HTTP: function arguments cross the wire as `$fn` values, a
//! continuation runs, a wrong argument fails permanently, and SIGTERM stops
//! the worker cleanly.

use kontinuum_api::ObjectId;
use kontinuum_engine::{Engine, EngineConfig};
use kontinuum_server::{Client, Server};
use serde_json::{Value, json};
use std::process::{Child, Command};
use std::time::Duration;
use tokio::sync::oneshot;

fn task(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
           "metadata": {"name": name}, "spec": spec})
}

/// Kills the worker if the test fails before it is stopped on purpose.
struct Worker(Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_worker_binary_serves_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path(), EngineConfig::default()).unwrap();
    let server = Server::bind(engine, "127.0.0.1:0".parse().unwrap(), None)
        .await
        .unwrap();
    let url = format!("http://{}", server.local_addr().unwrap());
    let (_stop, rx) = oneshot::channel::<()>();
    tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    let mut worker = Worker(
        Command::new(env!("CARGO_BIN_EXE_kontinuum-seed-worker"))
            .args(["--server", &url, "--pool", "default", "--concurrency", "4"])
            .spawn()
            .unwrap(),
    );

    let client = Client::new(&url, None).unwrap();
    let add = json!({"$fn": {"function": "seed.add"}});
    client
        .submit(vec![
            task(
                "sum",
                json!({"call": {"function": "seed.do_sum", "args": {"a": 4, "b": 5}},
                       "onSuccess": {"function": "seed.add_c", "args": {"c": 7}}}),
            ),
            task(
                "apply",
                json!({"call": {"function": "seed.apply_function_to_args",
                                "args": {"f": add, "a": 4, "b": 5}}}),
            ),
            task(
                "bad",
                json!({"call": {"function": "seed.apply_function_to_args",
                                "args": {"f": 3, "a": 4, "b": 5}}}),
            ),
        ])
        .await
        .unwrap();
    let names = ["sum", "apply", "bad"].map(|n| ObjectId::task("default", n));
    let views = tokio::time::timeout(
        Duration::from_secs(30),
        client.wait(&names, Duration::from_millis(10)),
    )
    .await
    .unwrap()
    .unwrap();
    let status: Vec<&Value> = views.iter().map(|v| &v.status).collect();
    assert_eq!(status[0]["result"], 9, "{}", status[0]);
    assert!(status[0]["continuation"].is_string(), "{}", status[0]);
    assert_eq!(status[1]["result"], 9, "{}", status[1]);
    assert_eq!(status[2]["phase"], "Failed", "{}", status[2]);
    let message = status[2]["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("argument 'f': expected a function value"),
        "{message}"
    );

    let pid = worker.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = worker.0.try_wait().unwrap() {
            assert!(exit.success(), "worker exited with {exit}");
            break;
        }
        assert!(std::time::Instant::now() < until, "worker ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
