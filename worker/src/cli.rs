//! The command line of a worker binary: flags or `KONTINUUM_*` variables
//! (how a WorkerPool's Deployment configures its pods), the server's
//! token, metrics, and `--handler`. `kontinuum-worker` is this with the
//! `std.*` functions; a worker built with the SDK calls [`main`] with its
//! own registry and takes the same flags, so it runs in a WorkerPool as the
//! stock one does (examples/seed-worker).

use crate::handler::{HandlerConfig, HandlerPool, split_command};
use crate::{Registry, ServeError, ServeOptions, serve_registry};
use clap::{CommandFactory, FromArgMatches, Parser};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(version)]
struct Cli {
    /// The server: http://HOST:PORT (kontinuum serve, or the operator's Service).
    #[arg(
        long,
        env = "KONTINUUM_SERVER",
        value_name = "URL",
        required_unless_present = "install_into"
    )]
    server: Option<String>,
    /// The pool to serve ("*" = any pool).
    #[arg(
        long,
        env = "KONTINUUM_POOL",
        value_name = "POOL",
        default_value = "default"
    )]
    pool: String,
    /// Tasks run at once.
    #[arg(long, env = "KONTINUUM_CONCURRENCY", value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    concurrency: u32,
    /// A file holding the server's bearer token.
    #[arg(long, env = "KONTINUUM_TOKEN_FILE", value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// This worker's name (default: HOSTNAME-PID).
    #[arg(long, env = "KONTINUUM_WORKER_NAME", value_name = "NAME")]
    name: Option<String>,
    /// How long running tasks may take to finish after SIGTERM: a duration
    /// (30s, 1m30s) or plain seconds.
    #[arg(long, env = "KONTINUUM_GRACE", value_name = "DURATION", default_value = "10s",
          value_parser = flag_duration)]
    grace: Duration,
    /// Serve Prometheus metrics on /metrics (and /healthz) at ADDR, e.g. 0.0.0.0:9091.
    #[arg(long, env = "KONTINUUM_METRICS_LISTEN", value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// Also serve the functions of a handler: 'CMD ARGS' run as long-lived
    /// processes speaking the handler protocol (docs/handlers.md), e.g.
    /// 'python3 /app/tasks.py'. Quoted like a shell line; no shell runs it.
    #[arg(long, env = "KONTINUUM_HANDLER", value_name = "'CMD ARGS'")]
    handler: Option<String>,
    /// Handler processes to run (default: --concurrency, so that every call
    /// has a process of its own, as Celery's prefork pool does).
    #[arg(long, env = "KONTINUUM_HANDLER_PROCESSES", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..))]
    handler_processes: Option<u32>,
    /// Serve only functions matching one of these patterns
    /// (comma-separated, `*` for any run of characters, e.g. 'std.*,py.*').
    #[arg(
        long,
        env = "KONTINUUM_ALLOW",
        value_name = "PATTERNS",
        default_value = ""
    )]
    allow: String,
    /// Never serve functions matching these patterns (e.g. 'std.exec');
    /// deny wins over allow.
    #[arg(
        long,
        env = "KONTINUUM_DENY",
        value_name = "PATTERNS",
        default_value = ""
    )]
    deny: String,
    /// Copy this binary into DIR (as DIR/NAME, executable) and exit: how a
    /// WorkerPool's init container puts the worker into any image.
    #[arg(long, value_name = "DIR", conflicts_with = "handler")]
    install_into: Option<PathBuf>,
}

/// How long the worker waits for a handler's first hello (or first
/// failure) before it starts leasing, so that its functions are registered
/// with the server from the start. A handler not ready by then is waited for
/// by each call, and its functions are registered once it is.
const HANDLER_START_WAIT: Duration = Duration::from_secs(30);

fn flag_duration(text: &str) -> Result<Duration, kontinuum_api::duration::DurationError> {
    kontinuum_api::duration::parse_flag_duration(text)
}

/// Why the worker stopped with a failure.
#[derive(Debug, thiserror::Error)]
enum WorkerError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot read --token-file {}: {source}", .path.display())]
    TokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("--handler: {0}")]
    Handler(String),
    #[error("--install-into {}: {source}", .dir.display())]
    Install {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Runs a worker binary named `name` serving `registry`: parses the command
/// line (and `KONTINUUM_*` variables), serves until SIGTERM, and returns the
/// exit code (1 when it cannot start or is refused, 2 on a bad flag).
pub fn main(name: &'static str, about: &'static str, registry: Registry) -> ExitCode {
    crate::init_logging();
    let matches = Cli::command().name(name).about(about).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Some(dir) = &cli.install_into {
        return match install_into(dir, name) {
            Ok(to) => {
                eprintln!("{name}: installed as {}", to.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{name}: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(WorkerError::Runtime)
        .and_then(|runtime| runtime.block_on(run(cli, registry)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, mut registry: Registry) -> Result<(), WorkerError> {
    registry.set_policy(crate::FunctionPolicy::from_lists(&cli.allow, &cli.deny));
    let token = match &cli.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|source| WorkerError::TokenFile {
                    path: path.clone(),
                    source,
                })?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let options = ServeOptions {
        // clap requires it unless --install-into, handled before.
        server: cli.server.unwrap_or_default(),
        token,
        token_file: cli.token_file.clone(),
        pool: cli.pool,
        concurrency: cli.concurrency as usize,
        name: cli.name.unwrap_or_else(default_name),
        grace: cli.grace,
        metrics_listen: cli.metrics_listen,
    };
    let Some(line) = cli.handler.filter(|l| !l.trim().is_empty()) else {
        return Ok(serve_registry(options, registry).await?);
    };
    let command = split_command(&line).map_err(WorkerError::Handler)?;
    let processes = cli.handler_processes.unwrap_or(cli.concurrency) as usize;
    let pool = HandlerPool::start(HandlerConfig::new(command, processes));
    registry.set_dynamic(pool.functions());
    if pool.wait_started(HANDLER_START_WAIT).await {
        tracing::info!(functions = ?pool.roster(), processes, "handler ready");
    } else {
        tracing::warn!(
            "the handler is not ready (see the lines above); serving, its calls wait for it up to 30 s each"
        );
    }
    let served = serve_registry(options, registry).await;
    pool.shutdown().await;
    Ok(served?)
}

/// Copies the running executable to `dir/name` (through a temporary file
/// and a rename, so a reader never sees half of it), mode 0755.
fn install_into(dir: &std::path::Path, name: &str) -> Result<PathBuf, WorkerError> {
    use std::os::unix::fs::PermissionsExt;
    let fail = |source| WorkerError::Install {
        dir: dir.to_path_buf(),
        source,
    };
    let exe = std::env::current_exe().map_err(fail)?;
    let to = dir.join(name);
    let partial = dir.join(format!(".{name}.partial"));
    std::fs::copy(&exe, &partial).map_err(fail)?;
    std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o755)).map_err(fail)?;
    std::fs::rename(&partial, &to).map_err(fail)?;
    Ok(to)
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
