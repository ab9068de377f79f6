//! Walking a slice of a map's source, one kind of cursor per kind of slice,
//! and the checkpoint a leaf passes every [`CHECK_EVERY`] items: progress,
//! cancellation, split requests and giving the executor back.

use super::lines::LineReader;
use crate::ctx::Ctx;
use crate::error::FnError;
use serde_json::Value;
use std::borrow::Cow;
use std::time::{Duration, Instant};

/// Items between checks of progress, cancellation, split requests and the clock.
pub(super) const CHECK_EVERY: u32 = 64;
/// A sync loop gives the executor back at least this often, so heartbeats,
/// leasing and other tasks run on a busy two-core box.
const YIELD_AFTER: Duration = Duration::from_millis(2);

/// Walks a slice. Positions are absolute in the source's units (the integer
/// for a range, the index for items, the byte offset for lines).
pub(super) trait Cursor {
    fn next_item(&mut self) -> Result<Option<Cow<'_, Value>>, FnError>;
    /// The next unprocessed position: where a split would cut.
    fn position(&self) -> i64;
    fn end(&self) -> i64;
    /// Units done so far (items, or bytes for lines).
    fn done(&self) -> u64;
    fn stop_at(&mut self, at: i64);
}

pub(super) struct RangeCursor {
    start: i64,
    pub(super) next: i64,
    pub(super) end: i64,
}

impl RangeCursor {
    pub(super) fn new(start: i64, end: i64) -> Self {
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

pub(super) struct ItemsCursor {
    offset: u64,
    items: Vec<Value>,
    next: usize,
    end: usize,
}

impl ItemsCursor {
    /// `items` are the slice's, the first at index `offset` of the source.
    pub(super) fn new(offset: u64, items: Vec<Value>) -> Self {
        let end = items.len();
        ItemsCursor {
            offset,
            items,
            next: 0,
            end,
        }
    }
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

pub(super) struct LinesCursor {
    reader: LineReader,
    start: u64,
}

impl LinesCursor {
    pub(super) fn new(reader: LineReader, start: u64) -> Self {
        LinesCursor { reader, start }
    }
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

pub(super) async fn checkpoint<C: Cursor>(
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
