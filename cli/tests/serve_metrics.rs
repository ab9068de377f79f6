//! `kontinuum serve --metrics-listen` and `kontinuum-worker
//! --metrics-listen`: after a job runs, both processes' /metrics show it.

mod serve_common;

use serve_common::{KONTINUUM, Running, Server, cli, examples, worker_binary};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// GET http://127.0.0.1:PORT/PATH → (status, body), once the port answers.
fn get(port: u16, path: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) if Instant::now() > deadline => panic!("port {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    write!(stream, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (code, body.to_string())
}

#[test]
fn serve_and_worker_metrics_show_the_job_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let (api, metrics, worker_metrics) = (free_port(), free_port(), free_port());
    let process = Running(
        Command::new(KONTINUUM)
            .args(["serve", "--listen", &format!("127.0.0.1:{api}")])
            .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
            .arg("--data")
            .arg(dir.path().join("store"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let server = Server {
        url: format!("http://127.0.0.1:{api}"),
        process,
        dir,
    };
    assert_eq!(get(metrics, "/healthz").0, 200);
    let _worker = Running(
        Command::new(worker_binary())
            .args(["--server", &server.url, "--pool", "default"])
            .args(["--metrics-listen", &format!("127.0.0.1:{worker_metrics}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let sum = examples().join("sum.yaml");
    let out = cli(&server, &["submit", sum.to_str().unwrap(), "--wait"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let (code, text) = get(metrics, "/metrics");
    assert_eq!(code, 200);
    let default = [("namespace", "default"), ("pool", "default")];
    // The task and its continuation.
    assert_eq!(
        value(&text, "kontinuum_tasks_submitted_total", &default),
        Some(2.0),
        "{text}"
    );
    assert_eq!(value(&text, "kontinuum_pool_workers", &default), Some(1.0));
    let sum = [("function", "std.sum"), ("outcome", "succeeded")];
    assert_eq!(
        value(&text, "kontinuum_tasks_completed_total", &sum),
        Some(1.0)
    );
    let finished = [("kind", "task"), ("phase", "Succeeded")];
    assert_eq!(
        value(&text, "kontinuum_objects_finished_total", &finished),
        Some(2.0)
    );
    let leases = [("route", "/v1/lease"), ("code", "200")];
    assert!(value(&text, "kontinuum_http_requests_total", &leases).is_some_and(|n| n >= 1.0));

    let (code, text) = get(worker_metrics, "/metrics");
    assert_eq!(code, 200);
    let pool = [("pool", "default")];
    assert_eq!(
        value(
            &text,
            "kontinuum_worker_tasks_total",
            &[("function", "std.sum"), ("outcome", "succeeded")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(value(&text, "kontinuum_worker_slots", &pool), Some(8.0));
    assert_eq!(
        value(&text, "kontinuum_worker_slots_busy", &pool),
        Some(0.0)
    );
}

/// The value of the series `name` whose labels include all of `want`.
fn value(text: &str, name: &str, want: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .find(|(series, _)| {
            let (n, labels) = series.split_once('{').unwrap_or((series, ""));
            n == name
                && want
                    .iter()
                    .all(|(k, v)| labels.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|(_, v)| v.parse().ok())
}
