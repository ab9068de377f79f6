//! Running a map leaf: call the function per item of the slice, fold the
//! results, report progress, and give the rest of the slice back when the
//! engine asks for a split.
//!
//! This is the hot path of every sharded map (10,000,000 items in ~2 s on two
//! cores), so per item there is no merged argument map, no future for sync
//! functions, and no task; bookkeeping happens once per [`CHECK_EVERY`] items.
//!
//! `mod.rs` (this file) runs a leaf on the generic path; `kernel.rs` is the
//! integer fast path; `cursor.rs` walks each kind of slice and holds the
//! checkpoint both paths pass; `lines.rs` reads a byte range of a file as
//! lines; `objects.rs` the lines of a leaf over objects; `plan.rs` measures
//! a source before the engine shards it. Each uses only those after it; `tests.rs` runs leaves end to end.

mod cursor;
mod kernel;
mod lines;
mod objects;
mod plan;
#[cfg(test)]
mod tests;

use crate::args::Args;
use crate::ctx::{Ctx, Function};
use crate::error::FnError;
use crate::fold::Folder;
use crate::invocation::{FnResult, Invocation};
use cursor::{CHECK_EVERY, Cursor, ItemsCursor, LinesCursor, RangeCursor, checkpoint};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use kernel::run_kernel;
use kontinuum_api::FnRef;
use kontinuum_api::reducer::Reducer;
use kontinuum_api::work::Slice;
use lines::LineReader;
pub(crate) use plan::{SAMPLE_BYTES, mean_line_bytes, plan_source};
use serde_json::Value;
use std::sync::Arc;
use std::time::Instant;

/// Runs a map leaf and answers with the folded value.
pub(crate) async fn run_leaf(
    ctx: &Ctx,
    function: &FnRef,
    slice: Slice,
    reducer: Reducer,
) -> Result<Value, FnError> {
    if function.args.contains_key("item") {
        return Err(FnError::permanent(format!(
            "map function '{}': argument 'item' is already bound",
            function.function
        )));
    }
    let Some(f) = ctx.resolve(&function.function) else {
        return Err(ctx.unknown_function(&function.function));
    };
    if let (Slice::Range { start, end }, Reducer::Builtin(b)) = (&slice, &reducer)
        && let Some(kernel) = f.int_kernel(&function.args)
        && let Some(value) =
            run_kernel(ctx, &kernel, *b, &mut RangeCursor::new(*start, *end)).await?
    {
        return Ok(value);
    }
    let mut folder = Folder::new(reducer)?;
    match slice {
        Slice::Range { start, end } => {
            let mut c = RangeCursor::new(start, end);
            drive(ctx, &f, function, &mut c, &mut folder).await?;
        }
        Slice::Items { offset, items } => {
            let mut c = ItemsCursor::new(offset, items);
            drive(ctx, &f, function, &mut c, &mut folder).await?;
        }
        Slice::Lines { path, start, end } => {
            let reader = LineReader::open(&path, start, end)?;
            let mut c = LinesCursor::new(reader, start);
            drive(ctx, &f, function, &mut c, &mut folder).await?;
        }
        Slice::ObjectLines {
            store,
            parts,
            start,
            end,
        } => {
            let pieces = objects::read_pieces(&store, &parts, start, end).await?;
            let mut c = objects::ObjectLinesCursor::new(pieces, start, end);
            drive(ctx, &f, function, &mut c, &mut folder).await?;
        }
    }
    folder.finish()
}

async fn drive<C: Cursor>(
    ctx: &Ctx,
    f: &Arc<dyn Function>,
    function: &FnRef,
    cursor: &mut C,
    folder: &mut Folder,
) -> Result<(), FnError> {
    let window = f.map_window().max(1);
    // Calls on their way (a function with a window > 1), folded in order.
    let mut waiting = FuturesOrdered::new();
    let mut since_check = 0u32;
    let mut last_yield = Instant::now();
    loop {
        let Some(item) = cursor.next_item()? else {
            break;
        };
        let args = Args::with_one(&function.args, "item", item);
        let (value, waited) = match f.invoke(ctx, args) {
            Invocation::Ready(r) => (Some(r?), false),
            Invocation::Pending(fut) if window > 1 => {
                waiting.push_back(fut);
                if waiting.len() >= window {
                    fold_next(ctx, &mut waiting, folder).await?;
                }
                (None, false)
            }
            Invocation::Pending(fut) => (Some(fut.await?), true),
        };
        if let Some(value) = value {
            // Built-in reducers fold without an await point.
            if folder.is_builtin() {
                folder.add_now(value)?;
            } else {
                folder.add(ctx, value).await?;
            }
        }
        since_check += 1;
        // After an awaited call time has passed anyway, so check at once.
        if since_check >= CHECK_EVERY || waited {
            since_check = 0;
            // Progress and splits count whole items only.
            while !waiting.is_empty() {
                fold_next(ctx, &mut waiting, folder).await?;
            }
            checkpoint(ctx, cursor, &mut last_yield).await?;
        }
    }
    while !waiting.is_empty() {
        fold_next(ctx, &mut waiting, folder).await?;
    }
    ctx.progress(cursor.done());
    Ok(())
}

async fn fold_next(
    ctx: &Ctx,
    waiting: &mut FuturesOrdered<BoxFuture<'static, FnResult>>,
    folder: &mut Folder,
) -> Result<(), FnError> {
    if let Some(result) = waiting.next().await {
        folder.add(ctx, result?).await?;
    }
    Ok(())
}
