//! Lines from a pipe, each at most a limit: a handler that writes a line
//! without end cannot make the worker buffer it.

use tokio::io::{AsyncRead, AsyncReadExt};

/// How much is read from the pipe at once.
const CHUNK: usize = 64 * 1024;
/// How much of a line over the limit is kept, to quote it.
const KEEP: usize = 256;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A whole line, without its newline (the last one may lack it).
    Text(Vec<u8>),
    /// A line longer than the limit: its first bytes. The rest of it is
    /// skipped, so the next line read is the one after it.
    TooLong(Vec<u8>),
}

pub(crate) struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Where the unread part of `buf` starts.
    start: usize,
    /// How far from `start` there is surely no newline.
    scanned: usize,
    limit: usize,
    /// Inside a line over the limit: drop bytes up to its newline.
    skipping: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    pub(crate) fn new(inner: R, limit: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            limit,
            skipping: false,
        }
    }

    /// The next line; `None` at the end of the stream.
    pub(crate) async fn next(&mut self) -> std::io::Result<Option<Line>> {
        loop {
            let pending = &self.buf[self.start..];
            if let Some(at) = pending[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.start + self.scanned + at;
                let line = self.buf[self.start..end].to_vec();
                self.start = end + 1;
                self.scanned = 0;
                if std::mem::take(&mut self.skipping) {
                    continue;
                }
                if line.len() > self.limit {
                    return Ok(Some(Line::TooLong(line[..KEEP.min(line.len())].to_vec())));
                }
                return Ok(Some(Line::Text(line)));
            }
            self.scanned = pending.len();
            if self.scanned > self.limit {
                let head = if self.skipping {
                    None
                } else {
                    Some(pending[..KEEP.min(pending.len())].to_vec())
                };
                self.skipping = true;
                self.start = self.buf.len();
                self.scanned = 0;
                if let Some(head) = head {
                    return Ok(Some(Line::TooLong(head)));
                }
            }
            // Move what is left to the front before it would grow the buffer.
            if self.start > 0 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
            let had = self.buf.len();
            self.buf.resize(had + CHUNK, 0);
            let n = self.inner.read(&mut self.buf[had..]).await;
            self.buf.truncate(had + *n.as_ref().unwrap_or(&0));
            if n? == 0 {
                if self.buf.is_empty() || std::mem::take(&mut self.skipping) {
                    self.buf.clear();
                    return Ok(None);
                }
                let last = std::mem::take(&mut self.buf);
                self.scanned = 0;
                return Ok(Some(Line::Text(last)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all(input: &[u8], limit: usize) -> Vec<Line> {
        let mut reader = LineReader::new(input, limit);
        let mut out = Vec::new();
        while let Some(line) = reader.next().await.unwrap() {
            out.push(line);
        }
        out
    }

    fn text(s: &str) -> Line {
        Line::Text(s.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn lines_come_whole_and_the_last_may_lack_its_newline() {
        assert_eq!(
            all(b"a\nbc\n\nd", 10).await,
            [text("a"), text("bc"), text(""), text("d")]
        );
        assert_eq!(all(b"", 10).await, []);
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_cut_and_skipped_to_its_end() {
        let mut input = b"ok\n".to_vec();
        input.extend(vec![b'x'; 200_000]);
        input.extend(b"\nnext\n");
        let got = all(&input, 1000).await;
        assert_eq!(
            got.len(),
            3,
            "{:?}",
            got.iter()
                .map(|l| matches!(l, Line::Text(_)))
                .collect::<Vec<_>>()
        );
        assert_eq!(got[0], text("ok"));
        assert_eq!(got[1], Line::TooLong(vec![b'x'; KEEP]));
        assert_eq!(got[2], text("next"));
        // Just over the limit within one read, then the stream ends inside it.
        let mut input = vec![b'y'; 1001];
        input.push(b'\n');
        input.extend(vec![b'z'; 5000]);
        let got = all(&input, 1000).await;
        assert_eq!(
            got,
            [
                Line::TooLong(vec![b'y'; KEEP]),
                Line::TooLong(vec![b'z'; KEEP])
            ]
        );
        assert_eq!(
            all(&vec![b'q'; 1000], 1000).await,
            [Line::Text(vec![b'q'; 1000])]
        );
    }
}
