//! Running a map leaf: call the function per item of the slice, fold the
//! results, report progress, and give the rest of the slice back when the
//! engine asks for a split.
//!
//! This is the hot path of every sharded map (10,000,000 items in ~2 s on two
//! cores), so per item there is no merged argument map, no future for sync
//! functions, and no task; bookkeeping happens once per [`CHECK_EVERY`] items.

use crate::args::Args;
use crate::ctx::Ctx;
use crate::error::FnError;
use crate::fold::Folder;
use crate::kernel::run_kernel;
use crate::lines::LineReader;
use crate::registry::{Function, Invocation};
use kontinuum_api::FnRef;
use kontinuum_api::reducer::Reducer;
use kontinuum_api::work::Slice;
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Items between checks of progress, cancellation, split requests and the clock.
pub(crate) const CHECK_EVERY: u32 = 64;
/// A sync loop gives the executor back at least this often, so heartbeats,
/// leasing and other tasks run on a busy two-core box.
const YIELD_AFTER: Duration = Duration::from_millis(2);

/// Walks a slice. Positions are absolute in the source's units (the integer
/// for a range, the index for items, the byte offset for lines).
pub(crate) trait Cursor {
    fn next_item(&mut self) -> Result<Option<Cow<'_, Value>>, FnError>;
    /// The next unprocessed position: where a split would cut.
    fn position(&self) -> i64;
    fn end(&self) -> i64;
    /// Units done so far (items, or bytes for lines).
    fn done(&self) -> u64;
    fn stop_at(&mut self, at: i64);
}

pub(crate) struct RangeCursor {
    start: i64,
    pub(crate) next: i64,
    pub(crate) end: i64,
}

impl RangeCursor {
    pub(crate) fn new(start: i64, end: i64) -> Self {
        RangeCursor {
            start,
            next: start,
            end,
        }
    }
}

impl Cursor for RangeCursor {
    fn next_item(&mut self) -> Result<Option<Cow<'_, Value>>, FnError> {
        if self.next >= self.end {
            return Ok(None);
        }
        let i = self.next;
        self.next += 1;
        Ok(Some(Cow::Owned(Value::from(i))))
    }
    fn position(&self) -> i64 {
        self.next
    }
    fn end(&self) -> i64 {
        self.end
    }
    fn done(&self) -> u64 {
        self.next.abs_diff(self.start)
    }
    fn stop_at(&mut self, at: i64) {
        self.end = self.end.min(at);
    }
}

struct ItemsCursor {
    offset: u64,
    items: Vec<Value>,
    next: usize,
    end: usize,
}

impl Cursor for ItemsCursor {
    fn next_item(&mut self) -> Result<Option<Cow<'_, Value>>, FnError> {
        if self.next >= self.end {
            return Ok(None);
        }
        self.next += 1;
        Ok(self.items.get(self.next - 1).map(Cow::Borrowed))
    }
    fn position(&self) -> i64 {
        to_i64(self.offset + self.next as u64)
    }
    fn end(&self) -> i64 {
        to_i64(self.offset + self.end as u64)
    }
    fn done(&self) -> u64 {
        self.next as u64
    }
    fn stop_at(&mut self, at: i64) {
        let local = u64::try_from(at).unwrap_or(0).saturating_sub(self.offset);
        self.end = self.end.min(usize::try_from(local).unwrap_or(usize::MAX));
    }
}

struct LinesCursor {
    reader: LineReader,
    start: u64,
}

impl Cursor for LinesCursor {
    fn next_item(&mut self) -> Result<Option<Cow<'_, Value>>, FnError> {
        Ok(self
            .reader
            .next_line()?
            .map(|l| Cow::Owned(Value::String(l))))
    }
    fn position(&self) -> i64 {
        to_i64(self.reader.position())
    }
    fn end(&self) -> i64 {
        to_i64(self.reader.end())
    }
    fn done(&self) -> u64 {
        // The last line may run past `end`; progress stays within the slice.
        let pos = self.reader.position().min(self.reader.end());
        pos.saturating_sub(self.start)
    }
    fn stop_at(&mut self, at: i64) {
        self.reader.stop_at(u64::try_from(at).unwrap_or(0));
    }
}

/// Item indexes and byte offsets as engine positions (i64, like range
/// integers); nothing real comes near 2^63.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

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
    let Some(f) = ctx.registry().get(&function.function).cloned() else {
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
            let end = items.len();
            let mut c = ItemsCursor {
                offset,
                items,
                next: 0,
                end,
            };
            drive(ctx, &f, function, &mut c, &mut folder).await?;
        }
        Slice::Lines { path, start, end } => {
            let reader = LineReader::open(&path, start, end)?;
            let mut c = LinesCursor { reader, start };
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
    let mut since_check = 0u32;
    let mut last_yield = Instant::now();
    loop {
        let Some(item) = cursor.next_item()? else {
            break;
        };
        let args = Args::with_one(&function.args, "item", item);
        let (value, waited) = match f.invoke(ctx, args) {
            Invocation::Ready(r) => (r?, false),
            Invocation::Pending(fut) => (fut.await?, true),
        };
        // Built-in reducers fold without an await point.
        if folder.is_builtin() {
            folder.add_now(value)?;
        } else {
            folder.add(ctx, value).await?;
        }
        since_check += 1;
        // After an awaited call time has passed anyway, so check at once.
        if since_check >= CHECK_EVERY || waited {
            since_check = 0;
            checkpoint(ctx, cursor, &mut last_yield).await?;
        }
    }
    ctx.progress(cursor.done());
    Ok(())
}

pub(crate) async fn checkpoint<C: Cursor>(
    ctx: &Ctx,
    cursor: &mut C,
    last_yield: &mut Instant,
) -> Result<(), FnError> {
    ctx.progress(cursor.done());
    if ctx.is_cancelled() {
        return Err(FnError::retryable("cancelled"));
    }
    if ctx.take_split_request() {
        let at = cursor.position();
        if at < cursor.end() {
            match ctx.split(at).await {
                Ok(true) => {
                    tracing::debug!(token = ctx.token(), at, "map leaf split");
                    cursor.stop_at(at);
                }
                Ok(false) => {}
                // Not splitting is always safe: the leaf just runs to its end.
                Err(e) => tracing::warn!(token = ctx.token(), at, error = %e, "split failed"),
            }
        }
    }
    if last_yield.elapsed() >= YIELD_AFTER {
        tokio::task::yield_now().await;
        *last_yield = Instant::now();
    }
    Ok(())
}
