//! `kontinuum-worker --server URL --pool P [--concurrency N] [--token-file F]
//! [--metrics-listen ADDR] [--handler 'CMD ARGS' [--handler-processes N]]`:
//! the stock worker, serving the `std.*` functions (and with `--handler`
//! the functions of a program in any language, docs/handlers.md) to a
//! `kontinuum serve` or operator over HTTP. Every flag can also come from a
//! `KONTINUUM_*` variable, which is how a WorkerPool's Deployment configures
//! it. On SIGTERM (or Ctrl-C) it stops leasing, lets running tasks finish
//! within `--grace`, hands back the rest and exits 0; a second signal exits
//! at once (the server re-runs that work when leases expire). The command
//! line itself is `kontinuum_worker::cli`.

// mimalloc: the engine allocates many small records per task; glibc's
// allocator took a quarter of the CPU in the no-op benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

fn main() -> ExitCode {
    kontinuum_worker::cli::main(
        "kontinuum-worker",
        "Kontinuum's stock worker: serves the std.* functions (and a handler's) to a server",
        kontinuum_worker::std_registry(),
    )
}
