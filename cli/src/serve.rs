//! `kontinuum serve`: the engine behind the worker API until Ctrl-C or
//! SIGTERM. Remote `kontinuum-worker` processes lease from it; `kontinuum
//! submit`, `get`, `tree` and `cancel` talk to it.

use crate::remote::RemoteError;
use kontinuum_engine::{Engine, EngineConfig, EngineError};
use kontinuum_server::Server;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Keep the store here (durable across restarts); default: a temporary
    /// directory removed on exit.
    #[arg(long, env = "KONTINUUM_DATA", value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// The address to listen on; beyond loopback a --token-file is required.
    #[arg(
        long,
        env = "KONTINUUM_LISTEN",
        value_name = "ADDR",
        default_value = "127.0.0.1:7070"
    )]
    pub listen: SocketAddr,
    /// A file holding the bearer token every client must send.
    #[arg(long, env = "KONTINUUM_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Serve Prometheus metrics on /metrics (and /healthz) at ADDR, e.g.
    /// 127.0.0.1:9090 (docs/metrics.md lists them).
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<SocketAddr>,
}

pub fn serve(args: ServeArgs) -> Result<ExitCode, RemoteError> {
    init_logs();
    if let Some(dir) = &args.data {
        crate::signals::check_data_dir(dir).map_err(RemoteError::Usage)?;
    }
    let token = match &args.token_file {
        Some(path) => Some(kontinuum_server::token_from_file(path)?),
        None => None,
    };
    // The temporary store is removed when `temp` drops, after the engine.
    let temp;
    let dir = match &args.data {
        Some(dir) => dir.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("kontinuum-serve-")
                .tempdir()
                .map_err(|source| RemoteError::Io {
                    path: std::env::temp_dir(),
                    source,
                })?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir).map_err(|source| RemoteError::Io {
        path: dir.clone(),
        source,
    })?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RemoteError::Runtime)?;
    runtime.block_on(async {
        let engine = Engine::open(&dir, EngineConfig::default()).map_err(|e| match e {
            EngineError::Locked { .. } => RemoteError::Busy(dir.clone()),
            other => RemoteError::Engine(other),
        })?;
        let server = Server::bind(engine.clone(), args.listen, token).await?;
        let addr = server.local_addr()?;
        let store = match &args.data {
            Some(d) => d.display().to_string(),
            None => format!("{} (temporary)", dir.display()),
        };
        eprintln!("kontinuum serve: listening on http://{addr}, store {store}");
        if let Some(listen) = args.metrics_listen {
            let bound = server.serve_metrics(listen).await?;
            eprintln!("kontinuum serve: metrics on http://{bound}/metrics");
        }
        let mut signals = crate::signals::Signals::new();
        let served = server
            .run(async move {
                signals.recv().await;
            })
            .await;
        engine.close();
        served?;
        eprintln!("kontinuum serve: stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// The server's own logs on stderr (RUST_LOG overrides the level).
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal, not in a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
