//! Slow and greedy clients, with raw TCP: half a request is cut off after
//! the read timeouts, connections over the cap are refused with a 503, and
//! well-behaved clients (a long poll included) keep working meanwhile.

use kontinuum_server::Limits;
use kontinuum_testkit::{ServerOptions, TestServer};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn serve(limits: Limits) -> TestServer {
    TestServer::with(ServerOptions::default().limits(limits)).await
}

/// Reads one response: (status, JSON body), or `None` if the connection
/// closed before one arrived.
async fn response(stream: &mut TcpStream) -> Option<(u16, Value)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    Some((status, body))
}

/// True once the server has closed `stream` (EOF or reset).
async fn closed(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte).await, Ok(0) | Err(_))
}

fn request(method: &str, path: &str, body: &str) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn limits(header: u64, body: u64, cap: usize) -> Limits {
    Limits {
        header_read: Duration::from_millis(header),
        body_read: Duration::from_millis(body),
        max_connections: cap,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_headers_are_cut_off_after_the_header_timeout() {
    let server = serve(limits(1000, 1000, 64)).await;
    let addr = server.addr();
    let mut half = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /v1/lease HTTP/1.1\r\nhost: x\r\ncontent-le")
            .await
            .unwrap();
        half.push(s);
    }
    let t0 = Instant::now();
    for s in &mut half {
        let shut = tokio::time::timeout(Duration::from_secs(10), closed(s)).await;
        assert_eq!(shut, Ok(true), "still open after {:?}", t0.elapsed());
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_body_is_answered_408_and_closed() {
    let server = serve(limits(5000, 1000, 64)).await;
    let addr = server.addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"POST /v1/lease HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{\"worker\":")
        .await
        .unwrap();
    let t0 = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(10), response(&mut s))
        .await
        .expect("no answer within 10 s");
    let (status, body) = answer.expect("closed without an answer");
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"], "timeout");
    assert!(
        t0.elapsed() >= Duration::from_millis(500),
        "{:?}",
        t0.elapsed()
    );
    assert!(closed(&mut s).await, "the rest of the body is never read");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_outlasts_the_read_timeouts() {
    let server = serve(limits(500, 500, 64)).await;
    let addr = server.addr();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let lease = r#"{"worker": "w", "pool": "default", "max": 1, "waitMs": 2000}"#;
    s.write_all(request("POST", "/v1/lease", lease).as_bytes())
        .await
        .unwrap();
    let t0 = Instant::now();
    let (status, body) = response(&mut s).await.expect("the long poll was cut off");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["leases"], serde_json::json!([]));
    assert!(
        t0.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_cap_new_connections_get_503_and_open_ones_keep_working() {
    let server = serve(limits(10_000, 10_000, 4)).await;
    let addr = server.addr();
    let mut good = TcpStream::connect(addr).await.unwrap();
    good.write_all(request("GET", "/healthz", "").as_bytes())
        .await
        .unwrap();
    assert_eq!(response(&mut good).await.unwrap().0, 200);
    // Three slow clients take the other places.
    let mut hogs = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        hogs.push(s);
    }
    // Accepting is asynchronous: the hogs are in once a fifth is refused.
    let mut refused = None;
    for _ in 0..100 {
        let mut extra = TcpStream::connect(addr).await.unwrap();
        extra
            .write_all(request("GET", "/healthz", "").as_bytes())
            .await
            .unwrap();
        match response(&mut extra).await {
            Some((503, body)) => {
                refused = Some(body);
                break;
            }
            // Served: a hog was not counted yet; this one closes again.
            Some((200, _)) | None => tokio::time::sleep(Duration::from_millis(20)).await,
            Some(other) => panic!("unexpected answer {other:?}"),
        }
    }
    let body = refused.expect("a connection over the cap was served");
    assert_eq!(body["error"], "unavailable");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("maximum of 4 connections"),
        "{body}"
    );
    // The connection that was there first still works, a long poll too.
    let lease = r#"{"worker": "w", "pool": "default", "max": 1, "waitMs": 300}"#;
    good.write_all(request("POST", "/v1/lease", lease).as_bytes())
        .await
        .unwrap();
    assert_eq!(response(&mut good).await.unwrap().0, 200);
    // A hog that goes away frees its place.
    drop(hogs.pop());
    let t0 = Instant::now();
    loop {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request("GET", "/healthz", "").as_bytes())
            .await
            .unwrap();
        if response(&mut s).await.map(|r| r.0) == Some(200) {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the place never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
