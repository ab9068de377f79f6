//! Which objects' statuses need writing, and when: the status writer's
//! memory, pure so that coalescing can be tested without a cluster.
//!
//! An object is *dirty* when something it shows may have changed (the
//! engine said so, its generation moved, a note was set). A dirty object is
//! *due* once `interval` has passed since its last write. The writer then
//! renders its status and either patches (a difference) or just clears the
//! dirty mark (nothing changed). A final status is written once more if it
//! differs, and after that the object is left alone.

use serde_json::Value;
use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use super::render::Note;

#[derive(Clone, Debug)]
pub struct Entry {
    pub uid: String,
    pub generation: Option<i64>,
    pub note: Option<Note>,
    /// The status as last written (or as found on the resource).
    pub written: Option<Value>,
    written_at: Option<Instant>,
    dirty: bool,
}

#[derive(Debug)]
pub struct Index<K> {
    entries: HashMap<K, Entry>,
    interval: Duration,
}

impl<K: Hash + Eq + Clone> Index<K> {
    pub fn new(interval: Duration) -> Self {
        Index {
            entries: HashMap::new(),
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
    pub fn observe(&mut self, key: K, uid: &str, generation: Option<i64>, current: Option<Value>) {
        match self.entries.get_mut(&key) {
            Some(e) if e.uid == uid => {
                if e.generation != generation {
                    e.generation = generation;
                    e.dirty = true;
                }
            }
            _ => {
                self.entries.insert(
                    key,
                    Entry {
                        uid: uid.to_string(),
                        generation,
                        note: None,
                        written: current,
                        written_at: None,
                        dirty: true,
                    },
                );
            }
        }
    }

    /// Sets (or clears) why the engine does not hold the object.
    pub fn set_note(&mut self, key: &K, note: Option<Note>) {
        if let Some(e) = self.entries.get_mut(key)
            && e.note != note
        {
            e.note = note;
            e.dirty = true;
        }
    }

    /// The engine changed something about the object; unknown keys (objects
    /// without a resource, such as continuations) are ignored.
    pub fn changed(&mut self, key: &K) {
        if let Some(e) = self.entries.get_mut(key) {
            e.dirty = true;
        }
    }

    /// The resource is gone: nothing more to write.
    pub fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Dirty objects whose interval has passed, at most `max`.
    pub fn due(&self, now: Instant, max: usize) -> Vec<K> {
        self.entries
            .iter()
            .filter(|(_, e)| e.dirty && self.interval_passed(e, now))
            .map(|(k, _)| k.clone())
            .take(max)
            .collect()
    }

    /// When the next dirty object becomes due (None: nothing is dirty).
    pub fn next_due(&self, now: Instant) -> Option<Instant> {
        self.entries
            .values()
            .filter(|e| e.dirty)
            .map(|e| match e.written_at {
                Some(at) => (at + self.interval).max(now),
                None => now,
            })
            .min()
    }

    fn interval_passed(&self, e: &Entry, now: Instant) -> bool {
        e.written_at
            .is_none_or(|at| now.saturating_duration_since(at) >= self.interval)
    }

    /// Takes the dirty mark off before rendering, so a change that arrives
    /// while the patch is on its way marks the object again.
    pub fn take(&mut self, key: &K) -> Option<Entry> {
        let e = self.entries.get_mut(key)?;
        e.dirty = false;
        Some(e.clone())
    }

    /// Whether `status` differs from what was last written.
    pub fn differs(&self, key: &K, status: &Value) -> bool {
        self.entries
            .get(key)
            .is_some_and(|e| e.written.as_ref() != Some(status))
    }

    /// A patch went through.
    pub fn wrote(&mut self, key: &K, uid: &str, status: Value, now: Instant) {
        if let Some(e) = self.entries.get_mut(key)
            && e.uid == uid
        {
            e.written = Some(status);
            e.written_at = Some(now);
        }
    }

    /// A patch failed: try again after the interval.
    pub fn failed(&mut self, key: &K, now: Instant) {
        if let Some(e) = self.entries.get_mut(key) {
            e.dirty = true;
            e.written_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn a_new_object_is_due_at_once_then_at_most_once_per_interval() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        ix.observe("a", "u1", Some(1), None);
        assert_eq!(ix.due(t0, 10), ["a"]);
        ix.take(&"a");
        ix.wrote(&"a", "u1", json!({"phase": "Queued"}), t0);
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
        ix.observe("a", "u1", Some(1), Some(json!({"phase": "Running"})));
        ix.take(&"a");
        assert!(!ix.differs(&"a", &json!({"phase": "Running"})));
        assert!(ix.differs(&"a", &json!({"phase": "Succeeded"})));
        assert!(ix.due(t0 + 10 * SEC, 10).is_empty());
        assert_eq!(ix.next_due(t0), None);
    }

    #[test]
    fn a_change_during_a_patch_is_not_lost() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        ix.observe("a", "u1", None, None);
        let _rendering = ix.take(&"a");
        ix.changed(&"a"); // arrives while the patch is on its way
        ix.wrote(&"a", "u1", json!({"phase": "Running"}), t0);
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
    }

    #[test]
    fn generation_change_or_note_marks_dirty_and_a_new_uid_starts_over() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        ix.observe("a", "u1", Some(1), None);
        ix.take(&"a");
        ix.wrote(&"a", "u1", json!({}), t0);
        ix.observe("a", "u1", Some(1), None);
        assert!(ix.due(t0 + SEC, 10).is_empty(), "same generation: clean");
        ix.observe("a", "u1", Some(2), None);
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
        ix.take(&"a");
        ix.set_note(
            &"a",
            Some(Note::WaitingForParent {
                message: "m".into(),
            }),
        );
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
        // Re-created under the same name: a fresh entry, due at once.
        ix.take(&"a");
        ix.wrote(&"a", "u1", json!({}), t0 + SEC);
        ix.observe("a", "u2", Some(1), None);
        assert_eq!(ix.due(t0 + SEC, 10), ["a"]);
        assert_eq!(ix.get(&"a").unwrap().uid, "u2");
        // A late write for the old uid does not land on the new entry.
        ix.take(&"a");
        ix.wrote(&"a", "u1", json!({"old": true}), t0 + SEC);
        assert!(ix.get(&"a").unwrap().written.is_none());
    }

    #[test]
    fn unknown_and_forgotten_objects_are_ignored() {
        let t0 = Instant::now();
        let mut ix: Index<&str> = Index::new(SEC);
        ix.changed(&"continuation");
        assert!(ix.is_empty());
        ix.observe("a", "u", None, None);
        ix.forget(&"a");
        ix.changed(&"a");
        assert!(ix.due(t0, 10).is_empty());
    }

    #[test]
    fn due_is_bounded_and_failed_patches_retry_after_the_interval() {
        let t0 = Instant::now();
        let mut ix = Index::new(SEC);
        for i in 0..100 {
            ix.observe(i, "u", None, None);
        }
        assert_eq!(ix.due(t0, 16).len(), 16);
        ix.take(&7);
        ix.failed(&7, t0);
        assert!(!ix.due(t0, 100).contains(&7));
        assert!(ix.due(t0 + SEC, 100).contains(&7));
    }
}
