//! `kill -9` the server process in the middle of a job, start it again on
//! the same store: the job ends with the exact result, nothing counted twice.
//! The server process is this test binary run again as `server_child`, so
//! the test needs no binary of another crate.

use kontinuum_api::ObjectId;
use kontinuum_engine::{Engine, EngineConfig};
use kontinuum_server::Client;
use kontinuum_testkit::{Process, worker};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DATA: &str = "KONTINUUM_TEST_SERVER_DATA";
const ADDR: &str = "KONTINUUM_TEST_SERVER_ADDR";

#[test]
#[ignore = "the server process that kill_9_the_server_mid_job starts; does nothing alone"]
fn server_child() {
    let (Ok(dir), Ok(addr)) = (std::env::var(DATA), std::env::var(ADDR)) else {
        return;
    };
    let addr: SocketAddr = addr.parse().unwrap();
    let config = EngineConfig {
        lease: Duration::from_secs(1),
        ..EngineConfig::default()
    };
    let engine = Engine::open(Path::new(&dir), config).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(kontinuum_server::serve(
            engine,
            addr,
            None,
            std::future::pending(),
        ))
        .unwrap();
}

fn start_server(dir: &Path, addr: SocketAddr) -> Process {
    Process::spawn(
        Command::new(std::env::current_exe().unwrap())
            .args(["server_child", "--exact", "--ignored", "--nocapture"])
            .env(DATA, dir)
            .env(ADDR, addr.to_string())
            .stdout(Stdio::null()),
    )
}

async fn wait_healthy(client: &Client) {
    let t0 = Instant::now();
    while client.health().await.is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "server never came up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn future(name: &str, map: Value) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
           "metadata": {"name": name}, "spec": {"map": map}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_the_server_mid_job() {
    let dir = tempfile::tempdir().unwrap();
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let url = format!("http://{addr}");
    let client = Client::new(&url, None).unwrap();
    let mut server = start_server(dir.path(), addr);
    wait_healthy(&client).await;
    let _workers: Vec<Process> = (0..2)
        .map(|_| {
            Process::spawn(&mut worker(
                env!("CARGO_BIN_EXE_kontinuum-worker"),
                &url,
                "default",
                &["--concurrency", "4"],
            ))
        })
        .collect();
    let n: i128 = 100_000;
    client
        .submit(vec![
            future(
                "naps",
                json!({"source": {"items": (0..40).collect::<Vec<_>>()},
                    "function": {"function": "std.sleep", "args": {"ms": 100}},
                    "shardSize": 1, "reduce": "count"}),
            ),
            future(
                "squares",
                json!({"source": {"range": {"start": 0, "end": n}},
                    "function": {"function": "std.square"}, "shardSize": 100, "reduce": "sum"}),
            ),
        ])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let before = client
        .get(&ObjectId::future("default", "naps"))
        .await
        .unwrap()
        .status;
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Kept until the test ends: the restarted server finishes the job.
    let _restarted = start_server(dir.path(), addr);
    wait_healthy(&client).await;
    let names = [
        ObjectId::future("default", "naps"),
        ObjectId::future("default", "squares"),
    ];
    let done = tokio::time::timeout(
        Duration::from_secs(120),
        client.wait(&names, Duration::from_millis(20)),
    )
    .await
    .unwrap()
    .unwrap();
    assert_ne!(before["phase"], "Succeeded", "killed too late to matter");
    assert_eq!(done[0].status["phase"], "Succeeded", "{}", done[0].status);
    assert_eq!(
        done[0].status["result"], 40,
        "each item counted exactly once"
    );
    let expected = (n - 1) * n * (2 * n - 1) / 6;
    assert_eq!(done[1].status["result"].to_string(), expected.to_string());

    // The restarted server asked the workers to register again: both are
    // listed with their functions, not as bare names.
    let registered = client.workers().await.unwrap();
    assert_eq!(registered.len(), 2, "{registered:?}");
    for w in &registered {
        assert!(
            w.functions.iter().any(|f| f == "std.square"),
            "{} lists no functions after the restart: {w:?}",
            w.worker
        );
        assert_eq!(w.concurrency, 4, "{w:?}");
    }
}
