//! Serving a registry to a server over HTTP until SIGTERM or Ctrl-C: what
//! `kontinuum-worker` does with the `std.*` functions, and what a worker of
//! your own functions (e.g. examples/seed-worker) does with its registry.

use crate::{
    Registry, RemoteConfig, RemoteSource, Runtime, RuntimeConfig, SourceError, WorkerMetrics,
};
use kontinuum_api::endpoints::RegisterRequest;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

/// Where and how to serve.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// http://HOST:PORT of `kontinuum serve` or the operator.
    pub server: String,
    pub token: Option<String>,
    /// The file `token` was read from, read again as it is rotated.
    pub token_file: Option<std::path::PathBuf>,
    /// The pool to serve ("*" = any pool).
    pub pool: String,
    /// Tasks run at once.
    pub concurrency: usize,
    /// This worker's name.
    pub name: String,
    /// How long running tasks may take to finish after the first signal.
    pub grace: Duration,
    /// Where to serve `/metrics` and `/healthz`, if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// Why [`serve_registry`] ended other than by a clean shutdown.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The server URL or the HTTP client could not be set up.
    #[error("cannot talk to {server}: {source}")]
    Setup {
        server: String,
        #[source]
        source: SourceError,
    },
    #[error("cannot watch {signal}: {source}")]
    Signal {
        signal: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The server refused the registration (a wrong token, a bad pool); it
    /// would refuse every lease too.
    #[error("the server refused this worker: {0}")]
    Refused(String),
    /// A second SIGTERM or Ctrl-C ended the wait for running tasks; the
    /// server runs their work again when the leases expire.
    #[error("second signal: exiting without waiting")]
    SecondSignal,
    /// `--metrics-listen` could not be bound.
    #[error("cannot serve --metrics-listen {addr}: {source}")]
    Metrics {
        addr: std::net::SocketAddr,
        #[source]
        source: kontinuum_server::ServeError,
    },
}

/// Leases and runs tasks until SIGTERM or Ctrl-C; then stops leasing, lets
/// running tasks finish within the grace period and hands back the rest. A
/// second signal returns at once; a server that refuses the worker (a wrong
/// token, a bad pool) ends it with that message.
pub async fn serve_registry(options: ServeOptions, registry: Registry) -> Result<(), ServeError> {
    let mut config = RemoteConfig::new(&options.server);
    config.token = options.token.clone().filter(|t| !t.is_empty());
    config.token_file = options.token_file.clone();
    let source = Arc::new(
        RemoteSource::new(config).map_err(|source| ServeError::Setup {
            server: options.server.clone(),
            source,
        })?,
    );
    let registry = Arc::new(registry);
    let name = options.name.clone();
    let watch = |kind: SignalKind, name: &'static str| {
        signal(kind).map_err(|source| ServeError::Signal {
            signal: name,
            source,
        })
    };
    let mut terminate = watch(SignalKind::terminate(), "SIGTERM")?;
    let mut interrupt = watch(SignalKind::interrupt(), "SIGINT")?;

    // Registration informs the server and checks the token; leasing does
    // not wait for it (the server may not be up yet).
    let request = RegisterRequest {
        worker: name.clone(),
        pool: options.pool.clone(),
        functions: registry.names(),
        concurrency: u32::try_from(options.concurrency).unwrap_or(u32::MAX),
    };
    let request_functions = request.functions.clone();
    let registrar = source.clone();
    let mut registration = tokio::spawn(async move {
        let give_up = Instant::now() + Duration::from_secs(3600);
        registrar.register(&request, give_up).await
    });

    let mut runtime_config = RuntimeConfig::new(&options.pool, options.concurrency);
    runtime_config.worker = name.clone();
    runtime_config.shutdown_grace = options.grace;
    // A long poll, short enough that shutdown (which waits for the poll in
    // flight) is prompt; work arriving during a poll is handed out at once.
    runtime_config.lease_wait = Duration::from_secs(1);
    // Completions batch by themselves while a complete call is in flight;
    // waiting for company on an idle worker only adds latency.
    runtime_config.flush_after = Duration::from_micros(200);
    if let Some(listen) = options.metrics_listen {
        let metrics = Arc::new(WorkerMetrics::new(&options.pool, options.concurrency));
        let bound = crate::metrics::serve_metrics(listen, metrics.clone())
            .await
            .map_err(|source| ServeError::Metrics {
                addr: listen,
                source,
            })?;
        tracing::info!(%bound, "serving /metrics and /healthz");
        runtime_config.metrics = Some(metrics);
    }
    tracing::info!(server = %options.server, pool = %options.pool, concurrency = options.concurrency, %name, "worker starting");
    let runtime = Runtime::start(source.clone(), registry.clone(), runtime_config);

    // A server that refuses us (a wrong token, a bad pool) will refuse every
    // lease too: say so and stop instead of retrying forever.
    let mut refused = None;
    let mut registering = true;
    loop {
        tokio::select! {
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: finishing running tasks");
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: finishing running tasks");
                break;
            }
            done = &mut registration, if registering => {
                registering = false;
                match done {
                    Ok(Ok(r)) => {
                        tracing::info!(worker = %r.worker, "registered");
                        if let Some(dynamic) = registry.dynamic() {
                            tokio::spawn(register_roster_changes(
                                source.clone(),
                                registry.clone(),
                                dynamic.changes(),
                                request_functions.clone(),
                            ));
                        }
                    }
                    Ok(Err(SourceError::Rejected(message))) => {
                        refused = Some(message);
                        break;
                    }
                    Ok(Err(e)) => tracing::warn!(error = %e, "could not register"),
                    Err(e) => tracing::warn!(error = %e, "registration ended abnormally"),
                }
            }
        }
    }
    if let Some(message) = refused {
        runtime.shutdown().await;
        return Err(ServeError::Refused(message));
    }
    tokio::select! {
        () = runtime.shutdown() => {
            tracing::info!("worker stopped");
            Ok(())
        }
        _ = terminate.recv() => Err(ServeError::SecondSignal),
        _ = interrupt.recv() => Err(ServeError::SecondSignal),
    }
}

/// Registers again whenever the registry's dynamic functions change (a
/// handler's processes announced a roster after the first registration),
/// so the server's worker list and the pool's status name them.
async fn register_roster_changes(
    source: Arc<RemoteSource>,
    registry: Arc<Registry>,
    mut changes: tokio::sync::watch::Receiver<u64>,
    mut registered: Vec<String>,
) {
    loop {
        let names = registry.names();
        if names != registered {
            let give_up = Instant::now() + Duration::from_secs(60);
            match source.register_functions(names.clone(), give_up).await {
                Ok(_) => {
                    tracing::info!(
                        functions = names.len(),
                        "registered the handler's functions"
                    );
                    registered = names;
                }
                Err(e) => tracing::warn!(error = %e, "could not register the handler's functions"),
            }
        }
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Logs of a worker process: to stderr, `RUST_LOG` or `info`, colours only
/// on a terminal.
pub fn init_logging() {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
