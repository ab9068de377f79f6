//! `RemoteSource` against the real server: completions survive a server
//! that is away or restarts, oversized batches are halved, an outcome too
//! large to send becomes a permanent failure, stale tokens are typed.

use kontinuum_api::ObjectId;
use kontinuum_api::work::{Completion, CompletionAck, Outcome};
use kontinuum_server::Client;
use kontinuum_testkit::{Process, ServerOptions, TestServer, worker};
use kontinuum_worker::{RemoteConfig, RemoteSource, SourceError, WorkSource};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

/// Serves the store at `dir` on `addr`; reopening waits for the previous
/// server's engine to let go of the store.
async fn serve(dir: &Path, addr: SocketAddr) -> TestServer {
    serve_with_lease(dir, addr, Duration::from_secs(1)).await
}

async fn serve_with_lease(dir: &Path, addr: SocketAddr, lease: Duration) -> TestServer {
    TestServer::with(ServerOptions::default().store(dir).addr(addr).lease(lease)).await
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn source(url: &str) -> RemoteSource {
    let mut config = RemoteConfig::new(url);
    config.max_backoff = Duration::from_millis(200);
    RemoteSource::new(config).unwrap()
}

fn task(name: &str, call: Value) -> Value {
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
           "metadata": {"name": name}, "spec": {"call": call}})
}

fn success(token: u64, value: Value) -> Completion {
    Completion {
        token,
        outcome: Outcome::Success { value },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_waits_for_the_server_to_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let remote = source(&format!("http://{addr}"));
    let sending = tokio::spawn(async move { remote.complete(vec![success(7, json!(1))]).await });
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!sending.is_finished(), "gave up while the server was away");
    let served = serve(dir.path(), addr).await;
    let acks = tokio::time::timeout(Duration::from_secs(10), sending)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(acks, vec![CompletionAck::Stale]);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_batches_are_halved_and_oversized_outcomes_fail_the_task() {
    let dir = tempfile::tempdir().unwrap();
    // A long lease: this test holds one without heartbeats while it
    // encodes megabytes (slow in debug builds on a busy machine).
    let lease = Duration::from_secs(60);
    let served = serve_with_lease(dir.path(), "127.0.0.1:0".parse().unwrap(), lease).await;
    let remote = source(served.url());
    let big = || json!("x".repeat(3 << 20));
    let batch = vec![success(1, big()), success(2, big()), success(3, big())];
    let acks = remote.complete(batch).await.unwrap();
    assert_eq!(acks, vec![CompletionAck::Stale; 3]);

    let client = Client::new(served.url(), None).unwrap();
    client
        .submit(vec![task("huge", json!({"function": "std.echo"}))])
        .await
        .unwrap();
    let leases = remote
        .lease("*", "w", 1, Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(leases.len(), 1);
    let token = leases[0].token;
    let acks = remote
        .complete(vec![success(token, json!("y".repeat(9 << 20)))])
        .await
        .unwrap();
    assert_eq!(acks, vec![CompletionAck::Accepted]);
    let status = client
        .get(&ObjectId::task("default", "huge"))
        .await
        .unwrap()
        .status;
    assert_eq!(status["phase"], "Failed", "{status}");
    let message = status["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("larger than the server accepts"),
        "{message}"
    );

    // A limit nothing fits under is an error, not an endless loop.
    let mut config = RemoteConfig::new(served.url());
    config.max_body_bytes = 10;
    let tiny = RemoteSource::new(config).unwrap();
    let refused = tiny
        .complete(vec![success(1, big()), success(2, big())])
        .await;
    assert!(
        matches!(refused, Err(SourceError::Rejected(_))),
        "{refused:?}"
    );

    assert_eq!(remote.split(token, 5).await, Err(SourceError::StaleLease));
    let beat = remote.heartbeat(token, None).await.unwrap();
    assert!(beat.lost);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_survives_a_server_restart_with_workers_connected() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let served = serve(dir.path(), addr).await;
    let url = served.url().to_string();
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
    let client = Client::new(&url, None).unwrap();
    let spec = json!({"map": {"source": {"items": (0..40).collect::<Vec<_>>()},
        "function": {"function": "std.sleep", "args": {"ms": 100}},
        "shardSize": 1, "reduce": "count"}});
    client
        .submit(vec![json!({"apiVersion": "kontinuum.dev/v1alpha1",
            "kind": "HierarchicalFuture", "metadata": {"name": "naps"}, "spec": spec})])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    served.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let served = serve(dir.path(), addr).await;
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        client.wait(
            &[ObjectId::future("default", "naps")],
            Duration::from_millis(20),
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(done[0].status["phase"], "Succeeded", "{}", done[0].status);
    assert_eq!(
        done[0].status["result"], 40,
        "each item counted exactly once"
    );
    served.stop().await;
}

/// A projected ServiceAccount token is rotated in its file; the source reads
/// the file again, so a worker outlives its first token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_file_is_read_again() {
    let served = TestServer::with(ServerOptions::default().token("current")).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "expired\n").unwrap();
    let mut config = RemoteConfig::new(served.url());
    config.token = Some("expired".into());
    config.token_file = Some(file.clone());
    config.token_reread = Duration::from_millis(50);
    let remote = RemoteSource::new(config).unwrap();
    let refused = remote.lease("default", "w", 1, Duration::ZERO).await;
    assert!(
        matches!(refused, Err(SourceError::Rejected(_))),
        "{refused:?}"
    );
    std::fs::write(&file, "current\n").unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let leased = remote.lease("default", "w", 1, Duration::ZERO).await;
    assert!(leased.is_ok(), "the new token was not used: {leased:?}");
    // An empty file (mid-rotation) keeps the last good token.
    std::fs::write(&file, "").unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let leased = remote.lease("default", "w", 1, Duration::ZERO).await;
    assert!(leased.is_ok(), "{leased:?}");
}

fn json_answer(body: Value) -> ([(&'static str, &'static str); 1], String) {
    ([("content-type", "application/json")], body.to_string())
}

/// A stand-in server whose registrations take a second to answer and whose
/// lease answers always ask the worker to register: the order a worker
/// meets when its first lease reaches the server before its registration.
async fn slow_registrar() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::routing::post;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let registrations = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = registrations.clone();
    let app = axum::Router::new()
        .route(
            "/v1/workers/register",
            post(move || {
                let counted = counted.clone();
                async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    json_answer(json!({"worker": "w", "maxBatch": 64,
                                       "maxLeaseWaitMs": 1000, "maxBodyBytes": 1 << 20}))
                }
            }),
        )
        .route(
            "/v1/lease",
            post(|| async { json_answer(json!({"leases": [], "register": true})) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), registrations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_before_the_first_registration_does_not_register_twice() {
    use kontinuum_api::endpoints::RegisterRequest;
    use std::sync::atomic::Ordering;
    let (url, registrations) = slow_registrar().await;
    let remote = std::sync::Arc::new(source(&url));
    let registrar = remote.clone();
    let registering = tokio::spawn(async move {
        let request = RegisterRequest {
            worker: "w".into(),
            pool: "default".into(),
            functions: vec!["std.echo".into()],
            concurrency: 1,
        };
        let give_up = std::time::Instant::now() + Duration::from_secs(10);
        registrar.register(&request, give_up).await
    });
    // The registration is in the server's hands, not yet answered.
    while registrations.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // This lease's answer asks to register: the registration under way is
    // the answer, not a second one.
    remote
        .lease("default", "w", 1, Duration::ZERO)
        .await
        .unwrap();
    registering.await.unwrap().unwrap();
    assert_eq!(registrations.load(Ordering::SeqCst), 1);
    // Registered, the server asks again: it has forgotten the worker
    // (restarted), so the worker registers again.
    remote
        .lease("default", "w", 1, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(registrations.load(Ordering::SeqCst), 2);
}
