//! The worker API server in the test's process.

use kontinuum_engine::{Engine, EngineConfig, EngineError};
use kontinuum_server::{Client, Limits, ServeError, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How to start a [`TestServer`]; `Default` is a fresh store, the engine's
/// default settings, a free loopback port and no token.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    pub engine: EngineConfig,
    pub addr: SocketAddr,
    pub token: Option<String>,
    pub limits: Option<Limits>,
    /// Serve this store instead of a fresh one (a restart).
    pub store: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            engine: EngineConfig::default(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: None,
            limits: None,
            store: None,
        }
    }
}

impl ServerOptions {
    /// A lease this long: a killed worker's tasks come back after it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.engine.lease = lease;
        self
    }

    pub fn engine(mut self, engine: EngineConfig) -> Self {
        self.engine = engine;
        self
    }

    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_string());
        self
    }

    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    pub fn store(mut self, dir: &Path) -> Self {
        self.store = Some(dir.to_path_buf());
        self
    }
}

/// A running server. Dropping it stops the server without waiting;
/// [`TestServer::stop`] waits and checks that it stopped cleanly.
pub struct TestServer {
    url: String,
    addr: SocketAddr,
    token: Option<String>,
    store: PathBuf,
    /// The fresh store's directory, removed when the server goes.
    dir: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl TestServer {
    /// A server with the default options.
    pub async fn start() -> TestServer {
        TestServer::with(ServerOptions::default()).await
    }

    pub async fn with(options: ServerOptions) -> TestServer {
        let (dir, store) = match &options.store {
            Some(path) => (None, path.clone()),
            None => {
                let dir = tempfile::tempdir().expect("a temporary directory for the store");
                let store = dir.path().to_path_buf();
                (Some(dir), store)
            }
        };
        let engine = open(&store, &options.engine).await;
        let mut server = Server::bind(engine, options.addr, options.token.clone())
            .await
            .expect("the test server binds");
        if let Some(limits) = options.limits {
            server = server.with_limits(limits);
        }
        let addr = server.local_addr().expect("a bound server has an address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TestServer {
            url: format!("http://{addr}"),
            addr,
            token: options.token,
            store,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The store's directory.
    pub fn store(&self) -> &Path {
        &self.store
    }

    /// A client with the server's token.
    pub fn client(&self) -> Client {
        Client::new(&self.url, self.token.clone()).expect("a client for the test server")
    }

    /// Stops the server and waits until it has; it must stop without error.
    pub async fn stop(self) {
        drop(self.stop_keeping_store().await);
    }

    /// Stops the server and hands back its fresh store's directory (`None`
    /// for a store given in [`ServerOptions::store`]), to serve it again.
    pub async fn stop_keeping_store(mut self) -> Option<tempfile::TempDir> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("the server task ended normally")
                .expect("the server stopped without error");
        }
        self.dir.take()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Opens the store, waiting (up to 10 s) for a previous server's engine in
/// this process to let go of it.
async fn open(store: &Path, config: &EngineConfig) -> Engine {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match Engine::open(store, config.clone()) {
            Ok(engine) => return engine,
            Err(EngineError::Locked { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("cannot open the store {}: {e}", store.display()),
        }
    }
}
