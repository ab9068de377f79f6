//! Which objects' statuses need writing, and when: the status writer's
//! memory, pure so that coalescing can be tested without a cluster.
//!
//! An object is *dirty* when something it shows may have changed (the
//! engine said so, its generation moved, a note was set). A dirty object is
//! *due* once `interval` has passed since its last write and no patch of it
//! is on its way. The writer then renders its status and either patches (a
//! difference) or just clears the dirty mark (nothing changed). A final
//! status is written once more if it differs, and after that the object is
//! left alone.
//!
//! An object's first status is written at once only if it is final (a task
//! that ran and ended before the writer got to it); otherwise it waits until
//! `interval` after the object was first seen, so that a short task costs
//! one patch, written the moment it ends, instead of a `Queued` patch that
//! would hold its final one back by a whole interval.
//!
//! The dirty keys are kept apart, each with the order in which it became
//! dirty, so finding what is due costs the dirty objects, not every object
//! the operator has seen, and when more are due than can be written at once
//! the longest waiting go first (a hash order would let some wait for as
//! long as the backlog lasts).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::model::JobStatus;
use super::render::Note;
use super::unserved::Unserved;

#[derive(Clone, Debug)]
pub struct Entry {
    pub uid: String,
    pub generation: Option<i64>,
    pub note: Option<Note>,
    /// Nothing serves its pool (see `unserved::Unserved`).
    pub unserved: Option<Unserved>,
    /// The status as last written (or as found on the resource).
    pub written: Option<JobStatus>,
    written_at: Option<Instant>,
    /// When the operator first saw the object.
    observed_at: Instant,
    /// Set by [`Index::hold`]: not due before then unless something changes.
    held_until: Option<Instant>,
}

impl Entry {
    /// A non-final first status found before this time waits for it.
    pub fn first_write_at(&self, interval: Duration) -> Option<Instant> {
        self.written_at
            .is_none()
            .then(|| self.observed_at + interval)
    }
}

#[derive(Debug)]
pub struct Index<K> {
    entries: HashMap<K, Entry>,
    /// Dirty keys, with the order in which they became dirty.
    dirty: HashMap<K, u64>,
    next_seq: u64,
    /// Taken for a patch that has not come back: not due again until then.
    in_flight: HashSet<K>,
    interval: Duration,
}

impl<K: Hash + Eq + Clone> Index<K> {
    pub fn new(interval: Duration) -> Self {
        Index {
            entries: HashMap::new(),
            dirty: HashMap::new(),
            next_seq: 0,
            in_flight: HashSet::new(),
            interval,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, key: &K) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// The reconciler saw the resource: remember whom to write to. `current`
    /// is the status the resource carries, so a restarted operator does not
    /// rewrite what is already there. A new object or a new generation is dirty.
    pub fn observe(
        &mut self,
        key: K,
        uid: &str,
        generation: Option<i64>,
        current: Option<JobStatus>,
        now: Instant,
    ) {
        match self.entries.get_mut(&key) {
            Some(e) if e.uid == uid => {
                if e.generation != generation {
                    e.generation = generation;
                    Self::mark(&mut self.dirty, &mut self.next_seq, key);
                }
            }
            _ => {
                self.entries.insert(
                    key.clone(),
                    Entry {
                        uid: uid.to_string(),
                        generation,
                        note: None,
                        unserved: None,
                        written: current,
                        written_at: None,
                        observed_at: now,
                        held_until: None,
                    },
                );
                Self::mark(&mut self.dirty, &mut self.next_seq, key);
            }
        }
    }

    /// Marks `key` dirty, keeping its place if it already is.
    fn mark(dirty: &mut HashMap<K, u64>, next_seq: &mut u64, key: K) {
        dirty.entry(key).or_insert_with(|| {
            *next_seq += 1;
            *next_seq
        });
    }

    /// Sets (or clears) why the engine does not hold the object.
    pub fn set_note(&mut self, key: &K, note: Option<Note>) {
        if let Some(e) = self.entries.get_mut(key)
            && e.note != note
        {
            e.note = note;
            Self::mark(&mut self.dirty, &mut self.next_seq, key.clone());
        }
    }

    /// Sets (or clears) that nothing serves the object's pool.
    pub fn set_unserved(&mut self, key: &K, unserved: Option<Unserved>) {
        if let Some(e) = self.entries.get_mut(key)
            && e.unserved != unserved
        {
            e.unserved = unserved;
            e.held_until = None;
            Self::mark(&mut self.dirty, &mut self.next_seq, key.clone());
        }
    }

    /// The engine changed something about the object; unknown keys (objects
    /// without a resource, such as continuations) are ignored.
    pub fn changed(&mut self, key: &K) {
        if let Some(e) = self.entries.get_mut(key) {
            e.held_until = None;
            Self::mark(&mut self.dirty, &mut self.next_seq, key.clone());
        }
    }

    /// Marks every object whose status is not final yet (the engine
    /// stopped: each needs a status saying so).
    pub fn mark_unfinished(&mut self) {
        let keys: Vec<K> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.written.as_ref().is_some_and(JobStatus::is_final))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            Self::mark(&mut self.dirty, &mut self.next_seq, key);
        }
    }

    /// The resource is gone: nothing more to write.
    pub fn forget(&mut self, key: &K) {
        self.entries.remove(key);
        self.dirty.remove(key);
        self.in_flight.remove(key);
    }

    /// Dirty objects whose interval has passed and that have no patch on
    /// its way, at most `max`, those dirty longest first.
    pub fn due(&self, now: Instant, max: usize) -> Vec<K> {
        if max == 0 {
            return Vec::new();
        }
        let mut ready: Vec<(u64, &K)> = self
            .dirty
            .iter()
            .filter(|(k, _)| !self.in_flight.contains(*k))
            .filter(|(k, _)| {
                self.entries
                    .get(*k)
                    .is_some_and(|e| self.interval_passed(e, now))
            })
            .map(|(k, seq)| (*seq, k))
            .collect();
        if ready.len() > max {
            ready.select_nth_unstable_by_key(max, |(seq, _)| *seq);
            ready.truncate(max);
        }
        ready.sort_unstable_by_key(|(seq, _)| *seq);
        ready.into_iter().map(|(_, k)| k.clone()).collect()
    }

    /// When the next dirty object becomes due (None: nothing is dirty, or
    /// only objects with a patch on its way, whose return wakes the writer).
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        self.dirty
            .keys()
            .filter(|k| !self.in_flight.contains(*k))
            .filter_map(|k| self.entries.get(k))
            .map(|e| self.not_before(e).max(now))
            .min()
    }

    fn interval_passed(&self, e: &Entry, now: Instant) -> bool {
        self.not_before(e) <= now
    }

    fn not_before(&self, e: &Entry) -> Instant {
        let after_write = e.written_at.map(|at| at + self.interval);
        match (after_write, e.held_until) {
            (Some(a), Some(h)) => a.max(h),
            (Some(t), None) | (None, Some(t)) => t,
            (None, None) => e.observed_at,
        }
    }

    /// Takes the dirty mark off before rendering, so a change that arrives
    /// while the patch is on its way marks the object again; the object is
    /// in flight until [`Index::wrote`], [`Index::failed`] or
    /// [`Index::unchanged`].
    pub fn take(&mut self, key: &K) -> Option<Entry> {
        let e = self.entries.get(key)?;
        self.dirty.remove(key);
        self.in_flight.insert(key.clone());
        Some(e.clone())
    }

    /// Patches on their way.
    #[cfg(test)]
    fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether `status` differs from what was last written.
    pub fn differs(&self, key: &K, status: &JobStatus) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.written.as_ref() != Some(status))
    }

    /// A patch went through.
    pub fn wrote(&mut self, key: &K, uid: &str, status: JobStatus, now: Instant) {
        self.in_flight.remove(key);
        if let Some(e) = self.entries.get_mut(key)
            && e.uid == uid
        {
            e.written = Some(status);
            e.written_at = Some(now);
            e.held_until = None;
        }
    }

    /// The rendered status equalled the written one: nothing was sent.
    pub fn unchanged(&mut self, key: &K) {
        self.in_flight.remove(key);
    }

    /// A first status that is not final yet: written at `until` unless the
    /// engine changes the object before (then it is rendered again).
    pub fn hold(&mut self, key: &K, until: Instant) {
        self.in_flight.remove(key);
        if let Some(e) = self.entries.get_mut(key) {
            e.held_until = Some(until);
            Self::mark(&mut self.dirty, &mut self.next_seq, key.clone());
        }
    }

    /// A patch failed: try again after the interval.
    pub fn failed(&mut self, key: &K, now: Instant) {
        self.in_flight.remove(key);
        if let Some(e) = self.entries.get_mut(key) {
            e.written_at = Some(now);
            Self::mark(&mut self.dirty, &mut self.next_seq, key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kontinuum_api::{Phase, TaskStatus};

    fn status(phase: Phase) -> JobStatus {
        JobStatus::task(TaskStatus {
            phase: Some(phase),
            ..TaskStatus::default()
        })
    }

    fn blank() -> JobStatus {
        JobStatus::task(TaskStatus::default())
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_new_object_is_due_at_once_then_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        ix.observe("a", "u1", Some(1), None, t0);
        assert_eq!(ix.due(t0, 10), ["a"]);
        ix.take(&"a");
        ix.wrote(&"a", "u1", status(Phase::Queued), t0);
        // Ten engine changes within the interval: one write when it passes.
        for _ in 0..10 {
            ix.changed(&"a");
        }
        assert!(ix.due(t0 + SEC / 2, 10).is_empty());
        assert_eq!(ix.next_due(t0 + SEC / 2), Some(t0 + SEC));
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
    }

    #[test]
    fn unchanged_status_is_not_written_and_clean_objects_are_not_due() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        ix.observe("a", "u1", Some(1), Some(status(Phase::Running)), t0);
        ix.take(&"a");
        assert!(!ix.differs(&"a", &status(Phase::Running)));
        assert!(ix.differs(&"a", &status(Phase::Succeeded)));
        assert!(ix.due(t0 + 10 * SEC, 10).is_empty());
        assert_eq!(ix.next_due(t0), None);
    }

    #[test]
    fn a_change_during_a_patch_is_not_lost() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        ix.observe("a", "u1", None, None, t0);
        let _rendering = ix.take(&"a");
        ix.changed(&"a"); // arrives while the patch is on its way
        ix.wrote(&"a", "u1", status(Phase::Running), t0);
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
    }

    #[test]
    fn generation_change_or_note_marks_dirty_and_a_new_uid_starts_over() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        ix.observe("a", "u1", Some(1), None, t0);
        ix.take(&"a");
        ix.wrote(&"a", "u1", blank(), t0);
        ix.observe("a", "u1", Some(1), None, t0);
        assert!(ix.due(t0 + SEC, 10).is_empty(), "same generation: clean");
        ix.observe("a", "u1", Some(2), None, t0);
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
        ix.take(&"a");
        ix.set_note(
            &"a",
            Some(Note::WaitingForParent {
                message: "m".into(),
            }),
        );
        assert!(ix.due(t0 + SEC, 10).is_empty(), "its patch is on its way");
        ix.unchanged(&"a");
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
        // Re-created under the same name: a fresh entry, due at once.
        ix.take(&"a");
        ix.wrote(&"a", "u1", blank(), t0 + SEC);
        ix.observe("a", "u2", Some(1), None, t0);
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
        assert_eq!(ix.get(&"a").unwrap().uid, "u2");
        // A late write for the old uid does not land on the new entry.
        ix.take(&"a");
        ix.wrote(&"a", "u1", status(Phase::Cancelled), t0 + SEC);
        assert!(ix.get(&"a").unwrap().written.is_none());
    }

    #[test]
    fn unknown_and_forgotten_objects_are_ignored() {
        let t0 = Instant::now();
        let mut ix: Index<&str> = Index::new(SEC);
        ix.changed(&"continuation");
        assert!(ix.is_empty());
        ix.observe("a", "u", None, None, t0);
        ix.forget(&"a");
        ix.changed(&"a");
        assert!(ix.due(t0, 10).is_empty());
    }

    #[test]
    fn a_held_first_status_waits_for_the_interval_or_the_next_change() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        ix.observe("a", "u1", None, None, t0);
        let e = ix.take(&"a").unwrap();
        assert_eq!(e.first_write_at(SEC), Some(t0 + SEC));
        // Rendered as Queued: held until a second after it was seen.
        ix.hold(&"a", t0 + SEC);
        assert!(ix.due(t0 + SEC / 2, 10).is_empty());
        assert_eq!(ix.next_due(t0), Some(t0 + SEC));
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
        // A change (the task ended) makes it due at once.
        ix.take(&"a");
        ix.hold(&"a", t0 + SEC);
        ix.changed(&"a");
        assert_eq!(ix.due(t0 + SEC / 4, 10), ["a"]);
        ix.take(&"a");
        ix.wrote(&"a", "u1", status(Phase::Succeeded), t0 + SEC / 4);
        assert_eq!(ix.get(&"a").unwrap().first_write_at(SEC), None);
    }

    #[test]
    fn the_longest_dirty_go_first_when_more_are_due_than_fit() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        for i in 0..50 {
            ix.observe(i, "u", None, None, t0);
        }
        // Marked again while dirty: keeps its place.
        ix.changed(&0);
        assert_eq!(ix.due(t0, 5), [0, 1, 2, 3, 4]);
        for i in 0..5 {
            ix.take(&i);
        }
        ix.changed(&49);
        assert_eq!(ix.due(t0, 3), [5, 6, 7]);
    }

    #[test]
    fn an_object_in_flight_is_not_due_until_its_patch_returns() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        ix.observe("a", "u1", None, None, t0);
        ix.take(&"a");
        ix.changed(&"a");
        assert!(ix.due(t0 + 10 * SEC, 10).is_empty(), "in flight");
        assert_eq!(ix.next_due(t0), None);
        assert_eq!(ix.in_flight(), 1);
        ix.unchanged(&"a");
        assert_eq!(ix.in_flight(), 0);
        assert_eq!(ix.due(t0, 10), ["a"], "never written: due at once");
        ix.take(&"a");
        ix.forget(&"a");
        assert_eq!(ix.in_flight(), 0);
    }

    #[test]
    fn a_stopped_engine_marks_what_has_not_finished() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        let phases = [
            ("run", Some(Phase::Running)),
            ("done", Some(Phase::Succeeded)),
            ("new", None),
        ];
        for (key, phase) in phases {
            ix.observe(key, "u", None, None, t0);
            ix.take(&key);
            if let Some(phase) = phase {
                ix.wrote(&key, "u", status(phase), t0);
            } else {
                ix.unchanged(&key);
            }
        }
        assert!(ix.due(t0 + SEC, 10).iter().all(|k| *k == "new"));
        ix.mark_unfinished();
        let mut due = ix.due(t0 + SEC, 10);
        due.sort();
        assert_eq!(due, ["new", "run"]);
    }

    #[test]
    fn due_is_bounded_and_failed_patches_retry_after_the_interval() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        for i in 0..100 {
            ix.observe(i, "u", None, None, t0);
        }
        assert_eq!(ix.due(t0, 16).len(), 16);
        ix.take(&7);
        ix.failed(&7, t0);
        assert!(!ix.due(t0, 100).contains(&7));
        assert!(ix.due(t0 + SEC, 100).contains(&7));
    }
}
