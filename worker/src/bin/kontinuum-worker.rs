//! `kontinuum-worker --server URL --pool P [--concurrency N] [--token-file F]
//! [--metrics-listen ADDR]`:
//! the stock worker. Serves the `std.*` functions to a `kontinuum serve` or
//! operator over HTTP. On SIGTERM (or Ctrl-C) it stops leasing, lets running
//! tasks finish within `--grace`, hands back the rest and exits 0; a second
//! signal exits at once (the server re-runs that work when leases expire).

// mimalloc: the engine allocates many small records per task; glibc's
// allocator took a quarter of the CPU in the no-op benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use kontinuum_worker::{ServeOptions, serve_registry, std_registry};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Serve Prometheus metrics on /metrics (and /healthz) at ADDR, e.g. 0.0.0.0:9091.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
}

fn main() -> ExitCode {
    kontinuum_worker::init_logging();
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
    let token = match &cli.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read --token-file {}: {e}", path.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let options = ServeOptions {
        server: cli.server,
        token,
        pool: cli.pool,
        concurrency: cli.concurrency,
        name: cli.name.unwrap_or_else(default_name),
        grace: Duration::from_secs(cli.grace),
        metrics_listen: cli.metrics_listen,
    };
    serve_registry(options, std_registry()).await
}

/// In a pod, the pod's name (`POD_NAME`, which the operator sets): the
/// operator counts a worker's tasks by it before a scale-down. Elsewhere
/// host-PID, unique per process.
fn default_name() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.trim().is_empty()
    {
        return pod.trim().to_string();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    format!("{host}-{}", std::process::id())
}
