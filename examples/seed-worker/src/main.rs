//! `kontinuum-seed-worker --server URL [--pool P] [--concurrency N]`: serves
//! the seed's functions (and `std.*`) to a `kontinuum serve` over HTTP. The
//! bearer token, if the server wants one, comes from `$KONTINUUM_TOKEN`.
//! Ctrl-C or SIGTERM stops leasing and lets running tasks finish.

// mimalloc: the engine allocates many small records per task; glibc's
// allocator took a quarter of the CPU in the no-op benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use kontinuum_seed_worker::{Journal, register};
use kontinuum_worker::{ServeError, ServeOptions, serve_registry, std_registry};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: kontinuum-seed-worker --server URL [--pool P] [--concurrency N]";

struct Options {
    server: String,
    pool: String,
    concurrency: usize,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let (mut server, mut pool, mut concurrency) = (None, "default".to_string(), 8);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--server" => server = Some(value()?),
            "--pool" => pool = value()?,
            "--concurrency" => {
                let v = value()?;
                concurrency = v
                    .parse()
                    .map_err(|_| format!("--concurrency: '{v}' is not a count"))?;
            }
            other => return Err(format!("unknown argument '{other}'")),
        }
    }
    let server = server.ok_or("--server is required")?;
    Ok(Options {
        server,
        pool,
        concurrency,
    })
}

fn main() -> ExitCode {
    kontinuum_worker::init_logging();
    let options = match parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("kontinuum-seed-worker: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kontinuum-seed-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(options)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kontinuum-seed-worker: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(options: Options) -> Result<(), ServeError> {
    let mut registry = std_registry();
    register(&mut registry, &Journal::default());
    let serve_options = ServeOptions {
        server: options.server,
        token: std::env::var("KONTINUUM_TOKEN").ok(),
        token_file: None,
        pool: options.pool,
        concurrency: options.concurrency,
        name: format!("seed-worker-{}", std::process::id()),
        grace: Duration::from_secs(10),
        metrics_listen: None,
    };
    serve_registry(serve_options, registry).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> impl Iterator<Item = String> {
        s.split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn flags_parse_and_mistakes_are_named() {
        let o = parse(args("--server http://x:1 --pool p --concurrency 3")).unwrap();
        assert_eq!(
            (o.server.as_str(), o.pool.as_str(), o.concurrency),
            ("http://x:1", "p", 3)
        );
        assert_eq!(
            parse(args("--pool p")).err().unwrap(),
            "--server is required"
        );
        assert_eq!(
            parse(args("--server")).err().unwrap(),
            "--server needs a value"
        );
        assert!(parse(args("--server s --concurrency x")).is_err());
        assert_eq!(
            parse(args("--bogus")).err().unwrap(),
            "unknown argument '--bogus'"
        );
    }
}
