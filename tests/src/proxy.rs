//! A TCP proxy between one process and the API server, to stage network
//! faults: [`Proxy::freeze`] stalls every byte both ways while connections
//! stay open (a partition: requests hang, nothing fails), [`Proxy::cut`]
//! closes every connection and refuses new ones (the API server is gone),
//! [`Proxy::restore`] lets traffic flow again. TLS passes through untouched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Open,
    Frozen,
    Cut,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Bumped by every cut: a connection of an older generation ends.
    generation: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let (mode, watcher) = watch::channel(Mode::Open);
        let generation = Arc::new(AtomicU64::new(0));
        let generations = generation.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let mut watcher = watcher.clone();
                let generations = generations.clone();
                tokio::spawn(async move {
                    // A new connection waits out a freeze; a cut refuses it.
                    let _ = watcher.wait_for(|m| *m != Mode::Frozen).await;
                    if *watcher.borrow() == Mode::Cut {
                        return;
                    }
                    let born = generations.load(Ordering::SeqCst);
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let up = pump(cr, sw, watcher.clone(), generations.clone(), born);
                    let down = pump(sr, cw, watcher, generations, born);
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            mode,
            generation,
            task,
        }
    }

    /// Every byte waits until [`Proxy::restore`]; connections stay open.
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Frozen);
    }

    /// Closes every connection and refuses new ones until restored.
    pub fn cut(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.mode.send_replace(Mode::Cut);
    }

    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }

    /// A copy of the kubeconfig at `from` whose server is this proxy,
    /// written to `to`.
    pub fn kubeconfig(&self, from: &str, to: &std::path::Path) {
        let text = std::fs::read_to_string(from).expect("read the kubeconfig");
        let rewritten: String = text
            .lines()
            .map(|line| match line.trim_start().strip_prefix("server: ") {
                Some(_) => {
                    let indent = &line[..line.len() - line.trim_start().len()];
                    format!("{indent}server: https://{}\n", self.addr)
                }
                None => format!("{line}\n"),
            })
            .collect();
        std::fs::write(to, rewritten).expect("write the proxy's kubeconfig");
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Copies one direction, holding bytes while frozen and stopping at a cut.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    generations: Arc<AtomicU64>,
    born: u64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let read = tokio::select! {
            r = from.read(&mut buf) => r,
            _ = mode.wait_for(|m| *m == Mode::Cut) => return,
        };
        let n = match read {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if mode.wait_for(|m| *m != Mode::Frozen).await.is_err() {
            return;
        }
        if *mode.borrow() == Mode::Cut || generations.load(Ordering::SeqCst) != born {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// The API server's address from the kubeconfig at `path`
/// (`server: https://127.0.0.1:PORT`).
pub fn api_server_addr(path: &str) -> SocketAddr {
    let text = std::fs::read_to_string(path).expect("read the kubeconfig");
    let server = text
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("server: "))
        .expect("a server in the kubeconfig");
    server
        .trim()
        .trim_start_matches("https://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|e| panic!("the kubeconfig's server {server}: {e}"))
}
