//! The `kontinuum-seed-worker` binary serving the seed's functions to a real
//! server over HTTP: function arguments cross the wire as `$fn` values, a
//! continuation runs, a wrong argument fails permanently, and SIGTERM stops
//! the worker cleanly.

use kontinuum_api::ObjectId;
use kontinuum_testkit::{Process, TestServer};
use serde_json::{Value, json};
use std::time::Duration;

fn task(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
           "metadata": {"name": name}, "spec": spec})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_worker_binary_serves_a_server() {
    let server = TestServer::start().await;
    let mut worker = Process::spawn(&mut kontinuum_testkit::worker(
        env!("CARGO_BIN_EXE_kontinuum-seed-worker"),
        server.url(),
        "default",
        &["--concurrency", "4"],
    ));

    let client = server.client();
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

    worker.sigterm();
    let until = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = worker.try_wait().unwrap() {
            assert!(exit.success(), "worker exited with {exit}");
            break;
        }
        assert!(std::time::Instant::now() < until, "worker ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
