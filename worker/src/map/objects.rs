//! The lines of a leaf over objects. A leaf covers positions `start..end`
//! of the concatenation of the listing; each object it touches (a part)
//! gives the lines whose first byte lies in the leaf, by the same rule as a
//! file's byte ranges (lines.rs): a line belongs to the range holding its
//! first byte. The leaf's bytes are read before the leaf runs (bounded by
//! its shard size: `MAX_LEAF_BYTES`), so the cursor needs no I/O.

use super::cursor::Cursor;
use crate::error::FnError;
use crate::objects::read_range;
use bytes::Bytes;
use kontinuum_api::work::{ObjectPart, StoreRef};
use serde_json::Value;
use std::borrow::Cow;

/// How far past a part's end a read reaches at first for the end of its
/// last line; a longer line is read on in steps.
const LINE_END_READ: u64 = 64 * 1024;

/// One object's bytes for the leaf.
pub(super) struct Piece {
    /// The object's first byte's position.
    base: u64,
    /// Bytes from object offset `from`.
    data: Bytes,
    from: u64,
    /// Object offset of the first line the leaf owns.
    first: u64,
}

/// Reads what the leaf needs of each part.
pub(super) async fn read_pieces(
    store: &StoreRef,
    parts: &[ObjectPart],
    start: u64,
    end: u64,
) -> Result<Vec<Piece>, FnError> {
    let mut pieces = Vec::new();
    for part in parts {
        let Some((own_start, own_end)) = own_range(part.base, part.size, start, end) else {
            continue;
        };
        let from = own_start.saturating_sub(1);
        let mut to = own_end.saturating_add(LINE_END_READ).min(part.size);
        let mut data = read_range(store, &part.key, &part.etag, from, to)
            .await?
            .to_vec();
        // Until the line that starts last before own_end has its end.
        while to < part.size && !data[(own_end - 1 - from) as usize..].contains(&b'\n') {
            let more = (to - from).max(LINE_END_READ);
            let next = to.saturating_add(more).min(part.size);
            data.extend_from_slice(&read_range(store, &part.key, &part.etag, to, next).await?);
            to = next;
        }
        pieces.push(Piece::new(part.base, own_start, Bytes::from(data)));
    }
    Ok(pieces)
}

/// The offsets of an object (at `base`, `size` bytes long) that lie in
/// positions `start..end`, if any.
fn own_range(base: u64, size: u64, start: u64, end: u64) -> Option<(u64, u64)> {
    let own_start = start.saturating_sub(base);
    let own_end = end.saturating_sub(base).min(size);
    (own_start < own_end).then_some((own_start, own_end))
}

impl Piece {
    /// `data` holds the object's bytes from `own_start - 1` (from 0 when
    /// `own_start` is 0) to at least the end of the last line the leaf owns.
    fn new(base: u64, own_start: u64, data: Bytes) -> Piece {
        let from = own_start.saturating_sub(1);
        let first = if own_start == 0 {
            0
        } else {
            // Byte own_start - 1 is data[0]: the first line starts after
            // the first newline from there (none: the piece owns no line).
            data.iter()
                .position(|&b| b == b'\n')
                .map_or(from + data.len() as u64, |i| from + i as u64 + 1)
        };
        Piece {
            base,
            data,
            from,
            first,
        }
    }
}

pub(super) struct ObjectLinesCursor {
    pieces: Vec<Piece>,
    /// The piece being read and the object offset of its next line.
    at: usize,
    next: u64,
    start: u64,
    end: u64,
}

impl ObjectLinesCursor {
    pub(super) fn new(pieces: Vec<Piece>, start: u64, end: u64) -> Self {
        let next = pieces.first().map_or(0, |p| p.first);
        ObjectLinesCursor {
            pieces,
            at: 0,
            next,
            start,
            end,
        }
    }

    /// The next line and where it starts (a position), if the leaf owns one.
    fn next_line(&mut self) -> Option<String> {
        loop {
            let piece = self.pieces.get(self.at)?;
            let offset = (self.next - piece.from) as usize;
            let owned = piece.base + self.next < self.end;
            if owned && offset < piece.data.len() {
                let rest = &piece.data[offset..];
                let len = rest
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(rest.len(), |i| i + 1);
                self.next += len as u64;
                let mut line = &rest[..len];
                line = line.strip_suffix(b"\n").unwrap_or(line);
                line = line.strip_suffix(b"\r").unwrap_or(line);
                return Some(String::from_utf8_lossy(line).into_owned());
            }
            self.at += 1;
            self.next = self.pieces.get(self.at).map_or(0, |p| p.first);
        }
    }
}

impl Cursor for ObjectLinesCursor {
    fn next_item(&mut self) -> Result<Option<Cow<'_, Value>>, FnError> {
        Ok(self.next_line().map(|l| Cow::Owned(Value::String(l))))
    }
    fn position(&self) -> i64 {
        let at = match self.pieces.get(self.at) {
            Some(p) => p.base + self.next,
            None => self.end,
        };
        i64::try_from(at).unwrap_or(i64::MAX)
    }
    fn end(&self) -> i64 {
        i64::try_from(self.end).unwrap_or(i64::MAX)
    }
    fn done(&self) -> u64 {
        let at = u64::try_from(self.position()).unwrap_or(0);
        at.min(self.end).saturating_sub(self.start)
    }
    fn stop_at(&mut self, at: i64) {
        self.end = self.end.min(u64::try_from(at).unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces as read_pieces makes them, from whole objects in memory.
    fn pieces(objects: &[&str], start: u64, end: u64) -> Vec<Piece> {
        let mut base = 0;
        let mut out = Vec::new();
        for text in objects {
            let size = text.len() as u64;
            if let Some((own_start, _)) = own_range(base, size, start, end) {
                let from = own_start.saturating_sub(1) as usize;
                let data = Bytes::copy_from_slice(&text.as_bytes()[from..]);
                out.push(Piece::new(base, own_start, data));
            }
            base += size;
        }
        out
    }

    fn lines(objects: &[&str], start: u64, end: u64) -> Vec<String> {
        let mut c = ObjectLinesCursor::new(pieces(objects, start, end), start, end);
        std::iter::from_fn(|| c.next_line()).collect()
    }

    #[test]
    fn any_cut_of_the_concatenation_gives_every_line_once() {
        let objects = ["ab\ncd\n", "", "efg\nh", "\nij\r\nk"];
        let total: u64 = objects.iter().map(|o| o.len() as u64).sum();
        let whole = lines(&objects, 0, total);
        assert_eq!(whole, ["ab", "cd", "efg", "h", "", "ij", "k"]);
        for cut in 0..=total {
            for cut2 in cut..=total {
                let mut joined = lines(&objects, 0, cut);
                joined.extend(lines(&objects, cut, cut2));
                joined.extend(lines(&objects, cut2, total));
                assert_eq!(joined, whole, "cuts at {cut} and {cut2}");
            }
        }
    }

    #[test]
    fn progress_and_a_split_count_positions_of_the_concatenation() {
        let objects = ["ab\ncd\n", "efg\n"];
        let mut c = ObjectLinesCursor::new(pieces(&objects, 3, 10), 3, 10);
        assert_eq!(c.position(), 3);
        assert_eq!(c.next_line().as_deref(), Some("cd"));
        assert_eq!((c.position(), c.done()), (6, 3));
        c.stop_at(6);
        assert_eq!(c.next_line(), None, "the rest went to a split");
        assert_eq!(c.done(), 3);
    }
}
