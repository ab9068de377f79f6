//! Connections: our own accept loop instead of `axum::serve`, which reads
//! headers and bodies without any time limit and accepts without bound (520
//! connections holding half a request once stayed open indefinitely).
//!
//! - A request's headers must arrive within [`HEADER_READ_TIMEOUT`], counted
//!   from when the connection starts waiting for them; so an idle keep-alive
//!   connection is also closed after that long.
//! - A request's body must arrive within [`BODY_READ_TIMEOUT`] (checked where
//!   the body is read, see body.rs): 408 and the connection is closed.
//! - At most [`MAX_CONNECTIONS`] connections are served at once. One more is
//!   answered `503` at once and closed, so a client learns why instead of
//!   hanging in the listen queue; the connections already open go on.
//!
//! The long-polled `/v1/lease` is not affected: its request arrives at once,
//! and the wait happens in the handler, which no read timeout covers.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// How long a client may take to send a request's headers (and how long a
/// keep-alive connection may sit idle).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a whole request body (8 MiB at most).
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 2048;

/// The limits a server applies; [`Limits::default`] has the constants above.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_read: Duration,
    pub body_read: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read: HEADER_READ_TIMEOUT,
            body_read: BODY_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and lets every connection finish the request it is serving.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: give peers time
                    // to close instead of spinning on the error.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small request/response pairs: Nagle's delay would dominate latency.
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tokio::spawn(refuse(stream, limits.max_connections));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// How long a refused connection may take to finish sending before it is
/// closed (closing with unread bytes would reset it and lose the answer).
const REFUSE_DRAIN: Duration = Duration::from_secs(1);

/// A connection over the cap: a 503 saying why, then closed.
async fn refuse(mut stream: TcpStream, cap: usize) {
    let body = format!(
        r#"{{"error":"unavailable","message":"the server is serving its maximum of {cap} connections; retry shortly"}}"#
    );
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    if stream.write_all(answer.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let _ = tokio::time::timeout(REFUSE_DRAIN, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
