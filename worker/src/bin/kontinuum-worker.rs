//! `kontinuum-worker --server URL --pool P [--concurrency N] [--token-file F]`:
//! the stock worker. Serves the `std.*` functions to a `kontinuum serve` or
//! operator over HTTP. On SIGTERM (or Ctrl-C) it stops leasing, lets running
//! tasks finish within `--grace`, hands back the rest and exits 0; a second
//! signal exits at once (the server re-runs that work when leases expire).

use clap::Parser;
use kontinuum_api::protocol::RegisterRequest;
use kontinuum_worker::{
    RemoteConfig, RemoteSource, Runtime, RuntimeConfig, SourceError, std_registry,
};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser, Debug)]
#[command(
    name = "kontinuum-worker",
    version,
    about = "Kontinuum's stock worker: serves the std.* functions to a server"
)]
struct Cli {
    /// The server: http://HOST:PORT (kontinuum serve, or the operator's Service).
    #[arg(long)]
    server: String,
    /// The pool to serve ("*" = any pool).
    #[arg(long, default_value = "default")]
    pool: String,
    /// Tasks run at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// A file holding the server's bearer token.
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// This worker's name (default: HOSTNAME-PID).
    #[arg(long)]
    name: Option<String>,
    /// Seconds running tasks may take to finish after SIGTERM.
    #[arg(long, default_value_t = 10)]
    grace: u64,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kontinuum-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("kontinuum-worker: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let mut config = RemoteConfig::new(&cli.server);
    if let Some(path) = &cli.token_file {
        let token = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?;
        config.token = Some(token.trim().to_string()).filter(|t| !t.is_empty());
    }
    let source = Arc::new(RemoteSource::new(config).map_err(|e| e.to_string())?);
    let registry = Arc::new(std_registry());
    let name = cli.name.clone().unwrap_or_else(default_name);
    let mut terminate =
        signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?;

    // Registration informs the server and checks the token; leasing does
    // not wait for it (the server may not be up yet).
    let request = RegisterRequest {
        worker: name.clone(),
        pool: cli.pool.clone(),
        functions: registry.names(),
        concurrency: u32::try_from(cli.concurrency).unwrap_or(u32::MAX),
    };
    let registrar = source.clone();
    let mut registration = tokio::spawn(async move {
        let give_up = Instant::now() + Duration::from_secs(3600);
        registrar.register(&request, give_up).await
    });

    let mut runtime_config = RuntimeConfig::new(&cli.pool, cli.concurrency);
    runtime_config.worker = name.clone();
    runtime_config.shutdown_grace = Duration::from_secs(cli.grace);
    // A long poll, short enough that shutdown (which waits for the poll in
    // flight) is prompt; work arriving during a poll is handed out at once.
    runtime_config.lease_wait = Duration::from_secs(1);
    // Completions batch by themselves while a complete call is in flight;
    // waiting for company on an idle worker only adds latency.
    runtime_config.flush_after = Duration::from_micros(200);
    tracing::info!(server = %cli.server, pool = %cli.pool, concurrency = cli.concurrency, %name, "worker starting");
    let runtime = Runtime::start(source, registry, runtime_config);

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
                    Ok(Ok(r)) => tracing::info!(worker = %r.worker, "registered"),
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
        return Err(format!("the server refused this worker: {message}"));
    }
    tokio::select! {
        () = runtime.shutdown() => {
            tracing::info!("worker stopped");
            Ok(())
        }
        _ = terminate.recv() => Err("second signal: exiting without waiting".into()),
        _ = interrupt.recv() => Err("second signal: exiting without waiting".into()),
    }
}

fn default_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}
