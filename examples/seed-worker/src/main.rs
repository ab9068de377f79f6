//! `kontinuum-seed-worker --server URL [--pool P] [--concurrency N] ...`:
//! serves the seed's functions (and `std.*`) to a `kontinuum serve` or the
//! operator over HTTP. It takes the stock worker's flags and `KONTINUUM_*`
//! variables (`kontinuum_worker::cli`), so as an image (`scripts/build-image
//! --worker kontinuum-seed-worker`) it runs in a WorkerPool as the stock
//! worker does. Ctrl-C or SIGTERM stops leasing and lets running tasks finish.

// mimalloc: the engine allocates many small records per task; glibc's
// allocator took a quarter of the CPU in the no-op benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use kontinuum_seed_worker::{Journal, register};
use kontinuum_worker::std_registry;
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut registry = std_registry();
    register(&mut registry, &Journal::default());
    kontinuum_worker::cli::main(
        "kontinuum-seed-worker",
        "The seed design's examples as a Kontinuum worker",
        registry,
    )
}
