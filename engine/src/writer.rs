//! The store's writer thread. Decisions hand their writes over in order and
//! go on; one thread applies everything handed over since its last round as
//! one sled batch and fsyncs once. Until a write is in sled it sits in an
//! overlay that every read consults first, so readers never see the store
//! behind a decision that was already made.
//!
//! Why a thread: applying to sled took a third of the engine's time under
//! its lock. Handing over costs a map insert; the apply now overlaps with
//! the next decisions, and a record written twice in one round (a task
//! accepted and finished before the round) reaches sled once.

use crate::error::EngineError;
use crate::observe::{FSYNC_BUCKETS, Histogram};
use parking_lot::{Condvar, Mutex};
use sled::IVec;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

/// Records per sled batch, unless one decision alone has more. A batch of
/// 50,000 records took 330 MB (sled frees replaced pages only when the batch
/// ends); a few thousand cost little and still group many decisions.
const ROUND_ENTRIES: usize = 4096;

/// One record's new value; `None` removes it.
pub type Entry = (Vec<u8>, Option<IVec>);

#[derive(Default)]
struct Pending {
    /// Latest value per key not yet in sled, with the ticket that wrote it.
    overlay: BTreeMap<Vec<u8>, (u64, Option<IVec>)>,
    /// Handed-over decisions, oldest first.
    queue: Vec<(u64, Vec<Entry>)>,
    /// The last ticket handed out.
    issued: u64,
    /// Every ticket up to this one is on disk.
    durable: u64,
    /// Set when sled refused a write: nothing after it can be trusted.
    failed: Option<String>,
    closing: bool,
    /// Tests hold the writer back to see the overlay at work.
    held: bool,
    /// How long each round's fsync took.
    fsync: FsyncTimes,
    /// Tests make the next round panic, as a bug inside sled would.
    #[cfg(test)]
    panic_next: bool,
}

struct FsyncTimes(Histogram);

impl Default for FsyncTimes {
    fn default() -> Self {
        FsyncTimes(Histogram::new(&FSYNC_BUCKETS))
    }
}

struct Shared {
    pending: Mutex<Pending>,
    /// Wakes the writer thread.
    work: Condvar,
    /// Wakes callers waiting for durability.
    durable: Condvar,
}

/// sled plus the overlay and the writer thread.
pub struct Writer {
    db: sled::Db,
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Writer {
    pub fn start(db: sled::Db) -> Result<Writer, EngineError> {
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending::default()),
            work: Condvar::new(),
            durable: Condvar::new(),
        });
        let thread = {
            let (db, shared) = (db.clone(), shared.clone());
            std::thread::Builder::new()
                .name("kontinuum-writer".into())
                .spawn(move || write_loop(&db, &shared))
                .map_err(|e| EngineError::Invalid(format!("cannot start the writer thread: {e}")))?
        };
        Ok(Writer {
            db,
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Hands one decision's writes over; they are visible to reads at once.
    /// Returns the ticket to wait on for durability. A decision without
    /// writes gets the latest ticket: what it answers may rest on earlier
    /// decisions that are not on disk yet.
    pub fn hand_over(&self, entries: Vec<Entry>) -> Result<u64, EngineError> {
        let mut p = self.shared.pending.lock();
        if let Some(e) = &p.failed {
            return Err(EngineError::StoreFailed(e.clone()));
        }
        if entries.is_empty() {
            return Ok(p.issued);
        }
        p.issued += 1;
        let ticket = p.issued;
        for (key, value) in &entries {
            p.overlay.insert(key.clone(), (ticket, value.clone()));
        }
        p.queue.push((ticket, entries));
        drop(p);
        self.shared.work.notify_one();
        Ok(ticket)
    }

    /// Blocks until everything up to `ticket` is on disk.
    pub fn wait_durable(&self, ticket: u64) -> Result<(), EngineError> {
        let mut p = self.shared.pending.lock();
        loop {
            if p.durable >= ticket {
                return Ok(());
            }
            if let Some(e) = &p.failed {
                return Err(EngineError::StoreFailed(e.clone()));
            }
            self.shared.durable.wait(&mut p);
        }
    }

    /// How long the rounds' fsyncs took so far.
    pub fn fsync_times(&self) -> Histogram {
        self.shared.pending.lock().fsync.0.clone()
    }

    /// Why the store stopped taking writes, once it has.
    pub fn failure(&self) -> Option<String> {
        self.shared.pending.lock().failed.clone()
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<IVec>, EngineError> {
        if let Some((_, value)) = self.shared.pending.lock().overlay.get(key) {
            return Ok(value.clone());
        }
        self.db.get(key).map_err(|e| self.fail(e))
    }

    /// A sled error on a read is as final as one on a write: sled writes
    /// while it reads (it consolidates pages), and either way the store
    /// can no longer be trusted until it is opened again.
    fn fail(&self, e: sled::Error) -> EngineError {
        tracing::error!("the store failed: {e}");
        let first = {
            let mut p = self.shared.pending.lock();
            p.failed.get_or_insert_with(|| e.to_string()).clone()
        };
        self.shared.durable.notify_all();
        self.shared.work.notify_one();
        EngineError::StoreFailed(first)
    }

    /// Every record under `prefix`, in key order, as it is after every
    /// decision handed over so far.
    pub fn scan(&self, prefix: &[u8]) -> Result<Vec<(Vec<u8>, IVec)>, EngineError> {
        // The overlay first: a write that leaves it meanwhile is in sled
        // before it leaves, so the sled scan below still sees it.
        let over: Vec<Entry> = {
            let p = self.shared.pending.lock();
            p.overlay
                .range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, (_, v))| (k.clone(), v.clone()))
                .collect()
        };
        let from_sled = self.db.scan_prefix(prefix).map(|entry| {
            let (k, v) = entry.map_err(|e| self.fail(e))?;
            Ok((k.to_vec(), v))
        });
        if over.is_empty() {
            return from_sled.collect();
        }
        let mut merged = from_sled.collect::<Result<BTreeMap<_, _>, EngineError>>()?;
        for (k, v) in over {
            match v {
                Some(v) => merged.insert(k, v),
                None => merged.remove(&k),
            };
        }
        Ok(merged.into_iter().collect())
    }
}

impl Writer {
    /// Up to `limit` records under `prefix` whose keys come after `after`
    /// (from the start of `prefix` when `None`), in key order, as they are
    /// after every decision handed over so far. Reads no more than it
    /// returns, unlike [`Writer::scan`].
    pub fn scan_page(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, IVec)>, EngineError> {
        let from = match after {
            Some(key) => Bound::Excluded(key),
            None => Bound::Included(prefix),
        };
        let over: Vec<Entry> = {
            let p = self.shared.pending.lock();
            p.overlay
                .range::<[u8], _>((from, Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, (_, v))| (k.clone(), v.clone()))
                .collect()
        };
        let from = from.map(<[u8]>::to_vec);
        let mut range = self.db.range::<Vec<u8>, _>((from, Bound::Unbounded));
        let mut next_sled = || match range.next() {
            None => Ok(None),
            Some(Err(e)) => Err(self.fail(e)),
            Some(Ok((k, v))) => Ok(k.starts_with(prefix).then(|| (k.to_vec(), v))),
        };
        let mut over = over.into_iter();
        let (mut s, mut o) = (next_sled()?, over.next());
        let mut out = Vec::new();
        // Two sorted sequences merged; the overlay wins on equal keys, and a
        // removal there hides sled's record.
        while out.len() < limit {
            match (s.take(), o.take()) {
                (None, None) => break,
                (Some(rec), None) => {
                    out.push(rec);
                    s = next_sled()?;
                }
                (Some(rec), Some(newer)) if rec.0 < newer.0 => {
                    out.push(rec);
                    (s, o) = (next_sled()?, Some(newer));
                }
                (sled_rec, Some((k, v))) => {
                    s = match sled_rec {
                        Some(rec) if rec.0 == k => next_sled()?,
                        other => other,
                    };
                    out.extend(v.map(|v| (k, v)));
                    o = over.next();
                }
            }
        }
        Ok(out)
    }
}

impl Drop for Writer {
    /// Writes out everything handed over before the store goes away, so a
    /// reopen (same process or the next) finds it.
    fn drop(&mut self) {
        self.shared.pending.lock().closing = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
        if self.shared.pending.lock().failed.is_some() {
            // After a failed write sled's own flush on drop can wait forever
            // for a log buffer that will never be written (seen with a full
            // disk). Whatever was acknowledged is on disk already; the
            // process is about to restart, so the handle is leaked instead.
            std::mem::forget(self.db.clone());
        }
    }
}

/// Marks the store failed if the writer thread ends other than by closing
/// (a panic inside sled, say), so that callers waiting for durability get an
/// error instead of waiting forever.
struct ExitGuard<'a> {
    shared: &'a Shared,
    clean: bool,
}

impl Drop for ExitGuard<'_> {
    fn drop(&mut self) {
        if !self.clean {
            self.shared
                .pending
                .lock()
                .failed
                .get_or_insert_with(|| "the writer thread stopped unexpectedly".to_string());
            self.shared.durable.notify_all();
        }
    }
}

fn write_loop(db: &sled::Db, shared: &Shared) {
    let mut guard = ExitGuard {
        shared,
        clean: false,
    };
    loop {
        let round = {
            let mut p = shared.pending.lock();
            while (p.queue.is_empty() || p.held) && !p.closing && p.failed.is_none() {
                shared.work.wait(&mut p);
            }
            if p.queue.is_empty() || p.failed.is_some() {
                guard.clean = true;
                return;
            }
            #[cfg(test)]
            if p.panic_next {
                drop(p);
                panic!("a round panicked (test)");
            }
            // A prefix of whole decisions, about ROUND_ENTRIES records: sled
            // keeps every page version a batch makes until the batch ends.
            let mut entries = 0;
            let take = p
                .queue
                .iter()
                .take_while(|(_, e)| {
                    let first = entries == 0;
                    entries += e.len();
                    first || entries <= ROUND_ENTRIES
                })
                .count();
            p.queue.drain(..take).collect::<Vec<_>>()
        };
        let upto = round.last().map_or(0, |(t, _)| *t);
        // Later decisions overwrite earlier ones key by key; the batch is
        // atomic, so a crash keeps a prefix of the decisions.
        let mut batch = sled::Batch::default();
        for (_, entries) in &round {
            for (key, value) in entries {
                match value {
                    Some(v) => batch.insert(key.as_slice(), v.clone()),
                    None => batch.remove(key.as_slice()),
                }
            }
        }
        let applied = db.apply_batch(batch);
        if applied.is_ok() {
            let mut p = shared.pending.lock();
            for (_, entries) in &round {
                for (key, _) in entries {
                    if p.overlay.get(key).is_some_and(|(t, _)| *t <= upto) {
                        p.overlay.remove(key);
                    }
                }
            }
        }
        let result = applied.and_then(|()| {
            let started = Instant::now();
            db.flush().map(|_| started.elapsed())
        });
        let mut p = shared.pending.lock();
        match result {
            Ok(took) => {
                p.durable = upto;
                p.fsync.0.observe(took.as_secs_f64());
            }
            Err(e) => {
                tracing::error!("the store refused a write: {e}");
                p.failed = Some(e.to_string());
                drop(p);
                shared.durable.notify_all();
                return;
            }
        }
        drop(p);
        shared.durable.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Entry {
        (key.as_bytes().to_vec(), Some(IVec::from(value.as_bytes())))
    }

    fn del(key: &str) -> Entry {
        (key.as_bytes().to_vec(), None)
    }

    fn hold(w: &Writer, on: bool) {
        w.shared.pending.lock().held = on;
        w.shared.work.notify_one();
    }

    fn open() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        (dir, Writer::start(db).unwrap())
    }

    #[test]
    fn reads_see_handed_over_writes_before_sled_does() {
        let (_dir, w) = open();
        let t1 = w
            .hand_over(vec![put("a/1", "one"), put("a/2", "two")])
            .unwrap();
        w.wait_durable(t1).unwrap();
        hold(&w, true);
        let t2 = w
            .hand_over(vec![put("a/2", "TWO"), put("a/3", "three"), del("a/1")])
            .unwrap();
        assert!(t2 > t1);
        // sled still has the old state; reads already see the new one.
        assert_eq!(w.db.get("a/1").unwrap().as_deref(), Some(&b"one"[..]));
        assert_eq!(w.db.get("a/3").unwrap(), None);
        assert_eq!(w.get(b"a/1").unwrap(), None);
        assert_eq!(w.get(b"a/2").unwrap().as_deref(), Some(&b"TWO"[..]));
        let scanned: Vec<(Vec<u8>, Vec<u8>)> = w
            .scan(b"a/")
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.to_vec()))
            .collect();
        assert_eq!(
            scanned,
            vec![
                (b"a/2".to_vec(), b"TWO".to_vec()),
                (b"a/3".to_vec(), b"three".to_vec())
            ]
        );
        hold(&w, false);
        w.wait_durable(t2).unwrap();
        assert_eq!(w.db.get("a/1").unwrap(), None);
        assert_eq!(w.db.get("a/2").unwrap().as_deref(), Some(&b"TWO"[..]));
        assert!(w.shared.pending.lock().overlay.is_empty());
    }

    #[test]
    fn pages_merge_the_overlay_with_sled_in_key_order() {
        let (_dir, w) = open();
        let t = w
            .hand_over(vec![
                put("a/1", "1"),
                put("a/3", "3"),
                put("a/5", "5"),
                put("b/0", "x"),
            ])
            .unwrap();
        w.wait_durable(t).unwrap();
        hold(&w, true);
        w.hand_over(vec![
            put("a/2", "2"),
            del("a/3"),
            put("a/5", "five"),
            put("a/6", "6"),
        ])
        .unwrap();
        let page = |after: Option<&str>, limit| -> Vec<(String, String)> {
            w.scan_page(b"a/", after.map(str::as_bytes), limit)
                .unwrap()
                .into_iter()
                .map(|(k, v)| {
                    (
                        String::from_utf8(k).unwrap(),
                        String::from_utf8(v.to_vec()).unwrap(),
                    )
                })
                .collect()
        };
        let all = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(page(None, 2), all(&[("a/1", "1"), ("a/2", "2")]));
        assert_eq!(page(Some("a/2"), 2), all(&[("a/5", "five"), ("a/6", "6")]));
        assert_eq!(page(Some("a/6"), 2), all(&[]));
        assert_eq!(page(None, 100).len(), 4, "no b/ record, a/3 removed");
        hold(&w, false);
    }

    #[test]
    fn a_decision_without_writes_waits_for_the_ones_before_it() {
        let (_dir, w) = open();
        hold(&w, true);
        let t = w.hand_over(vec![put("k", "v")]).unwrap();
        assert_eq!(w.hand_over(Vec::new()).unwrap(), t);
        hold(&w, false);
        w.wait_durable(t).unwrap();
    }

    #[test]
    fn a_writer_that_dies_fails_the_waiters_instead_of_hanging_them() {
        let (_dir, w) = open();
        hold(&w, true);
        let t = w.hand_over(vec![put("k", "v")]).unwrap();
        w.shared.pending.lock().panic_next = true;
        hold(&w, false);
        let err = w.wait_durable(t).unwrap_err().to_string();
        assert!(err.contains("writer thread stopped"), "{err}");
        assert!(w.hand_over(vec![put("k2", "v")]).is_err());
    }

    #[test]
    fn the_last_round_is_written_when_the_store_closes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let w = Writer::start(sled::open(dir.path()).unwrap()).unwrap();
            hold(&w, true);
            w.hand_over(vec![put("late", "kept")]).unwrap();
            // Dropped while held: closing writes it out anyway.
        }
        // sled's I/O thread lets go of the file lock a moment after the
        // handle is dropped (Store waits for it; this bare Writer does not).
        let start = std::time::Instant::now();
        let db = loop {
            match sled::open(dir.path()) {
                Ok(db) => break db,
                Err(e) if start.elapsed() < std::time::Duration::from_secs(5) => {
                    assert!(e.to_string().contains("lock"), "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(db.get("late").unwrap().as_deref(), Some(&b"kept"[..]));
    }
}
