//! `kontinuum-operator`: engine, worker API and controllers in one process.

use mimalloc::MiMalloc;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

fn main() {
    eprintln!("kontinuum-operator: the controllers are not built yet");
    std::process::exit(2);
}
