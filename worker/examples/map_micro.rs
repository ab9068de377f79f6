//! Micro check of the map hot path (not a test): ns per item of a
//! `std.square` + `sum` leaf, as in the squares example, on one thread:
//! with its integer kernel, and through the generic JSON path.
//! `cargo run --release -p kontinuum-worker --example map_micro`

use kontinuum_api::work::{Slice, Work};
use kontinuum_api::{BuiltinReducer, FnRef, Reducer};
use kontinuum_worker::{Ctx, execute, std_registry};
use std::sync::Arc;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut registry = std_registry();
    // The same function without its integer kernel: the generic JSON path.
    registry.register_sync("plain.square", |ctx, args| {
        ctx.invoke("std.square", args).resolve_now()
    });
    let ctx = Ctx::detached(Arc::new(registry));
    let leaves = 1000;
    let shard = 10_000i64;
    rt.block_on(async {
        for (round, function) in ["std.square", "plain.square"]
            .iter()
            .cycle()
            .take(6)
            .enumerate()
        {
            let t = Instant::now();
            for leaf in 0..leaves {
                let work = Work::MapLeaf {
                    function: FnRef::new(*function),
                    slice: Slice::Range {
                        start: leaf * shard,
                        end: (leaf + 1) * shard,
                    },
                    reducer: Reducer::Builtin(BuiltinReducer::Sum),
                };
                execute(&ctx, work).await?;
            }
            let ns = t.elapsed().as_nanos() as f64 / (leaves * shard) as f64;
            println!(
                "round {round} {function}: {ns:.1} ns/item over {} items",
                leaves * shard
            );
        }
        Ok::<(), kontinuum_worker::FnError>(())
    })?;
    Ok(())
}
