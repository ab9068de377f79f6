//! Reading the lines of one byte range of a file.
//!
//! A line belongs to the range that holds its FIRST byte. So a reader of
//! `start..end` skips a partial first line (unless `start` is 0 or byte
//! `start-1` is a newline) and reads every line that starts before `end`,
//! even past `end`. Any cut of a file into byte ranges then gives each line
//! to exactly one range. Lines are split on `\n`; the `\n` and a `\r` before
//! it are removed; bytes that are not UTF-8 are replaced (U+FFFD).

use crate::error::FnError;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Seek, SeekFrom};

pub(crate) struct LineReader {
    reader: BufReader<File>,
    path: String,
    /// Offset of the next unread byte: always a line start once positioned.
    pos: u64,
    /// Lines starting at or after this are not ours.
    end: u64,
    buf: Vec<u8>,
}

impl LineReader {
    /// Opens `path` positioned at the first line that starts in `start..end`.
    pub(crate) fn open(path: &str, start: u64, end: u64) -> Result<LineReader, FnError> {
        let file = File::open(path).map_err(|e| io_error(path, &e))?;
        let mut reader = BufReader::with_capacity(64 * 1024, file);
        let mut pos = start;
        let mut buf = Vec::new();
        if start > 0 {
            reader
                .seek(SeekFrom::Start(start - 1))
                .map_err(|e| io_error(path, &e))?;
            // Reading from start-1 through the next newline lands on the first
            // line start at or after `start`: if byte start-1 is itself the
            // newline, that is `start`.
            let n = reader
                .read_until(b'\n', &mut buf)
                .map_err(|e| io_error(path, &e))?;
            // At EOF nothing was read; never report a position before `start`.
            pos = (start - 1 + n as u64).max(start);
        }
        Ok(LineReader {
            reader,
            path: path.to_string(),
            pos,
            end,
            buf,
        })
    }

    /// Offset of the next unread line's start.
    pub(crate) fn position(&self) -> u64 {
        self.pos
    }

    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    /// Gives up the lines starting at or after `at`.
    pub(crate) fn stop_at(&mut self, at: u64) {
        self.end = self.end.min(at);
    }

    /// The next line of the range, without its line ending.
    pub(crate) fn next_line(&mut self) -> Result<Option<String>, FnError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        self.buf.clear();
        let n = self
            .reader
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| io_error(&self.path, &e))?;
        if n == 0 {
            return Ok(None);
        }
        self.pos += n as u64;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        Ok(Some(String::from_utf8_lossy(&self.buf).into_owned()))
    }
}

pub(super) fn io_error(path: &str, e: &std::io::Error) -> FnError {
    let message = format!("lines source '{path}': {e}");
    match e.kind() {
        // Running again will not make the file appear or readable.
        ErrorKind::NotFound | ErrorKind::PermissionDenied | ErrorKind::IsADirectory => {
            FnError::permanent(message)
        }
        _ => FnError::retryable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(content: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content.as_bytes()).unwrap();
        f
    }

    fn lines(path: &str, start: u64, end: u64) -> Vec<String> {
        let mut r = LineReader::open(path, start, end).unwrap();
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn a_line_belongs_to_the_range_holding_its_first_byte() {
        let f = file_with("ab\ncd\r\n\nef");
        let p = f.path().to_str().unwrap();
        assert_eq!(lines(p, 0, 100), ["ab", "cd", "", "ef"]);
        assert_eq!(lines(p, 0, 1), ["ab"]);
        assert_eq!(lines(p, 1, 3), Vec::<String>::new());
        assert_eq!(lines(p, 1, 4), ["cd"]);
        assert_eq!(lines(p, 3, 4), ["cd"]);
        assert_eq!(lines(p, 4, 7), Vec::<String>::new());
        assert_eq!(lines(p, 4, 8), [""]);
        assert_eq!(lines(p, 8, 9), ["ef"]);
        assert_eq!(lines(p, 9, 100), Vec::<String>::new());
    }

    #[test]
    fn every_cut_gives_each_line_exactly_once() {
        // Lines of varied lengths, empty ones, and no final newline.
        let mut content = String::new();
        for i in 0..60 {
            content.push_str(&"x".repeat(i % 7));
            content.push_str(&format!("{i}\n"));
            if i % 11 == 0 {
                content.push('\n');
            }
        }
        content.push_str("last");
        let f = file_with(&content);
        let p = f.path().to_str().unwrap();
        let expected = lines(p, 0, u64::MAX);
        let len = content.len() as u64;
        for a in 0..=len {
            for b in [a, a + 1, a + 5, a + 13, len] {
                let b = b.min(len);
                let mut got = lines(p, 0, a);
                got.extend(lines(p, a, b));
                got.extend(lines(p, b, len));
                assert_eq!(got, expected, "cuts at {a} and {b}");
            }
        }
    }

    #[test]
    fn a_missing_file_is_a_permanent_error() {
        let err = LineReader::open("/nonexistent/kontinuum-file", 0, 10)
            .err()
            .unwrap();
        assert!(err.permanent);
        assert!(
            err.message.contains("/nonexistent/kontinuum-file"),
            "{}",
            err.message
        );
    }
}
