//! The on-disk layout: one sled tree, records keyed by a one-byte prefix, so
//! that every change a decision makes lands in one atomic batch. The writer
//! thread (writer.rs) applies and fsyncs them in rounds: group commit makes
//! an acknowledged change durable without one fsync per call.

use crate::error::EngineError;
use crate::records::{DebounceState, ExclusiveState, Node, Root, RootState};
use crate::writer::{Entry, Writer};
use kontinuum_api::work::NodeId;
use kontinuum_api::{ObjectId, ObjectKind};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};

const NODE: u8 = b'n';
/// Roots without a user's name (continuations, spawned tasks), by id.
const ROOT: u8 = b'r';
const VALUE: u8 = b'v';
/// Roots of objects (Tasks, futures, continuations), by `NS/KIND/NAME`: one
/// record answers both "does this object exist" and "what is its state".
const OBJECT: u8 = b'o';
const DEBOUNCE: u8 = b'd';
const EXCLUSIVE: u8 = b'x';
const ITEMS: u8 = b'i';
const META_NEXT_ID: &[u8] = b"m/next-id";
const META_LAYOUT: &[u8] = b"m/layout";
/// The store's identity, made when it is first opened: statuses written
/// from this store carry it, so a resource whose work lived in another
/// store (a lost volume, another `--data`) is told apart from a new one.
const META_STORE_ID: &[u8] = b"m/store-id";
/// Bumped whenever records move or change meaning (3: objects keyed by
/// namespaced id, roots carry namespace, uid and link).
const LAYOUT: u8 = 3;

/// The deepest record the store writes. serde_json reads back at most 127
/// levels; a record deeper than this is refused before it is written, so
/// the store never holds one it cannot read. The entry checks (guard.rs,
/// 64 levels per value) keep records far from it; this is the backstop.
const RECORD_MAX_NESTING: usize = 120;

fn id_key(prefix: u8, id: NodeId) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = prefix;
    key[1..].copy_from_slice(&id.to_be_bytes());
    key
}

fn node_key(root: NodeId, id: NodeId) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = NODE;
    key[1..9].copy_from_slice(&root.to_be_bytes());
    key[9..].copy_from_slice(&id.to_be_bytes());
    key
}

#[derive(serde::Serialize)]
struct StoredRootRef<'a> {
    root: &'a Root,
    #[serde(skip_serializing_if = "Option::is_none")]
    node: Option<&'a Node>,
}

#[derive(serde::Deserialize)]
pub struct StoredRoot {
    pub root: Root,
    #[serde(default)]
    pub node: Option<Node>,
}

fn value_key(parent: NodeId, index: u32) -> [u8; 13] {
    let mut key = [0u8; 13];
    key[0] = VALUE;
    key[1..9].copy_from_slice(&parent.to_be_bytes());
    key[9..].copy_from_slice(&index.to_be_bytes());
    key
}

fn object_key(id: &ObjectId) -> Vec<u8> {
    str_key(OBJECT, &id.to_string())
}

fn str_key(prefix: u8, s: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + s.len());
    key.push(prefix);
    key.extend_from_slice(s.as_bytes());
    key
}

fn encode<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, EngineError> {
    serde_json::to_vec(value).map_err(|e| EngineError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

fn object_id(key: &[u8]) -> Result<ObjectId, EngineError> {
    let text = std::str::from_utf8(key.get(1..).unwrap_or_default())
        .map_err(|e| corrupt_key(key, &e.to_string()))?;
    text.parse()
        .map_err(|e: kontinuum_api::ObjectIdError| corrupt_key(key, &e.to_string()))
}

fn corrupt_key(key: &[u8], detail: &str) -> EngineError {
    EngineError::Corrupt {
        what: format!("object key {}", String::from_utf8_lossy(key)),
        detail: detail.to_string(),
    }
}

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, EngineError> {
    serde_json::from_slice(bytes).map_err(|e| EngineError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

/// Refuses a record nested deeper than the store can read back.
fn readable(what: &str, bytes: &[u8]) -> Result<(), EngineError> {
    let nesting = kontinuum_api::limits::json_nesting(bytes, RECORD_MAX_NESTING);
    if nesting > RECORD_MAX_NESTING {
        return Err(EngineError::Invalid(format!(
            "a {what} record would be nested more than {RECORD_MAX_NESTING} levels deep, more than the store can read back; it was not written (values may be nested at most {} levels deep)",
            kontinuum_api::limits::MAX_NESTING
        )));
    }
    Ok(())
}

/// Decodes a root record (state byte first), or stands in for one that
/// does not decode.
fn root_record(key: &[u8], bytes: &[u8]) -> StoredRoot {
    let body = bytes.get(1..).unwrap_or_default();
    match decode::<StoredRoot>("root", body) {
        Ok(stored) => stored,
        Err(e) => {
            let detail = match &e {
                EngineError::Corrupt { detail, .. } => detail.clone(),
                other => other.to_string(),
            };
            let (object, id) = match key.split_first() {
                Some((&OBJECT, _)) => (object_id(key).ok(), None),
                Some((_, id)) => (None, id.try_into().ok().map(u64::from_be_bytes)),
                None => (None, None),
            };
            tracing::error!(
                object = object.as_ref().map(ToString::to_string).unwrap_or_default(),
                id,
                "a root record cannot be read ({detail}); its object is failed"
            );
            StoredRoot {
                root: crate::salvage::failed_root(object, id, body, &detail),
                node: None,
            }
        }
    }
}

/// The writes of one decision, applied atomically.
#[derive(Default)]
pub struct WriteSet {
    entries: Vec<Entry>,
}

impl WriteSet {
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.entries.push((key.to_vec(), Some(value.into())));
    }

    /// A JSON record: written only if it can be read back.
    fn put_record(&mut self, what: &str, key: &[u8], value: Vec<u8>) -> Result<(), EngineError> {
        readable(what, &value)?;
        self.put(key, value);
        Ok(())
    }

    fn del(&mut self, key: &[u8]) {
        self.entries.push((key.to_vec(), None));
    }

    /// A node other than a root node (those travel inside their root record).
    pub fn put_node(&mut self, node: &Node) -> Result<(), EngineError> {
        self.put_record("node", &node_key(node.root, node.id), encode("node", node)?)
    }

    /// The root record, with the tree's root node inside it, behind one
    /// byte of state so that recovery can skip finished trees unread.
    /// A named root is kept under its name, any other under its id.
    pub fn put_root(&mut self, root: &Root, node: Option<&Node>) -> Result<(), EngineError> {
        let mut bytes = vec![u8::from(root.state == RootState::Active)];
        serde_json::to_writer(&mut bytes, &StoredRootRef { root, node }).map_err(|e| {
            EngineError::Corrupt {
                what: "root".into(),
                detail: e.to_string(),
            }
        })?;
        match &root.object {
            Some(object) => self.put_record("root", &object_key(object), bytes),
            None => self.put_record("root", &id_key(ROOT, root.id), bytes),
        }
    }

    /// Every record of a finished object: its root record, its tree's
    /// nodes, the child values they hold, its map items.
    pub fn del_object(
        &mut self,
        store: &Store,
        id: &ObjectId,
        root: NodeId,
    ) -> Result<(), EngineError> {
        let mut prefix = [0u8; 9];
        prefix[0] = NODE;
        prefix[1..].copy_from_slice(&root.to_be_bytes());
        let mut parents = vec![root];
        for (key, _) in store.writer.scan(&prefix)? {
            if let Some(node) = key.get(9..17) {
                let mut b = [0u8; 8];
                b.copy_from_slice(node);
                parents.push(u64::from_be_bytes(b));
            }
            self.del(&key);
        }
        for parent in parents {
            let mut prefix = [0u8; 9];
            prefix[0] = VALUE;
            prefix[1..].copy_from_slice(&parent.to_be_bytes());
            for (key, _) in store.writer.scan(&prefix)? {
                self.del(&key);
            }
        }
        self.del(&id_key(ITEMS, root));
        self.del(&object_key(id));
        Ok(())
    }

    pub fn put_value(
        &mut self,
        parent: NodeId,
        index: u32,
        value: &Value,
    ) -> Result<(), EngineError> {
        self.put_record("value", &value_key(parent, index), encode("value", value)?)
    }

    pub fn del_value(&mut self, parent: NodeId, index: u32) {
        self.del(&value_key(parent, index));
    }

    pub fn put_debounce(&mut self, key: &str, state: &DebounceState) -> Result<(), EngineError> {
        self.put_record(
            "debounce",
            &str_key(DEBOUNCE, key),
            encode("debounce", state)?,
        )
    }

    pub fn put_exclusive(&mut self, key: &str, state: &ExclusiveState) -> Result<(), EngineError> {
        if state.holder.is_none() && state.rerun.is_none() {
            self.del(&str_key(EXCLUSIVE, key));
        } else {
            self.put_record(
                "exclusive",
                &str_key(EXCLUSIVE, key),
                encode("exclusive", state)?,
            )?;
        }
        Ok(())
    }

    pub fn put_items(&mut self, root: NodeId, items: &[Value]) -> Result<(), EngineError> {
        self.put_record("items", &id_key(ITEMS, root), encode("items", &items)?)
    }

    pub fn put_next_id(&mut self, next: NodeId) {
        self.put(META_NEXT_ID, next.to_be_bytes().to_vec());
    }

    /// Records this decision writes or removes, by key prefix: what the
    /// tests that count a task's writes read.
    #[cfg(test)]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}

/// Whether sled failed to open `path` because another process (or another
/// engine in this one) holds it. sled reports its file lock as a plain I/O
/// error of kind Other with the cause only in its text, so this takes the
/// same lock sled takes (an exclusive flock on `path/db`) and looks at the
/// kind of *that* error.
fn held_elsewhere(path: &Path, err: &sled::Error) -> bool {
    let sled::Error::Io(io) = err else {
        return false;
    };
    if io.kind() != std::io::ErrorKind::Other {
        return false;
    }
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path.join("db"))
    else {
        return false;
    };
    match fs2::FileExt::try_lock_exclusive(&file) {
        // Free after all: the failure was something else. The lock goes
        // with the file handle.
        Ok(()) => false,
        Err(e) => {
            e.kind() == std::io::ErrorKind::WouldBlock
                || e.raw_os_error() == fs2::lock_contended_error().raw_os_error()
        }
    }
}

/// The sled database behind its writer thread.
pub struct Store {
    // Dropped first: the writer writes out what it holds and lets go of sled.
    writer: Writer,
    // Dropped second: waits for sled's file lock to go.
    release: LockRelease,
    path: PathBuf,
    id: String,
}

impl Drop for Store {
    fn drop(&mut self) {
        // After a failed write the writer leaks sled's handle on purpose, so
        // the lock stays until the process ends: nothing to wait for.
        self.release.wait = self.writer.failure().is_none();
    }
}

/// Waits, when a store is dropped, until sled's own threads have let go of
/// the file lock, so that a store closed in this process can be opened again
/// at once (sled finishes a last log write on its I/O thread after the
/// handle is gone, and until then the lock looks held by another process).
struct LockRelease {
    lock_file: PathBuf,
    wait: bool,
}

/// The longest a closing store waits for sled's lock to go.
const RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

impl Drop for LockRelease {
    fn drop(&mut self) {
        if !self.wait {
            return;
        }
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.lock_file)
        else {
            return;
        };
        let deadline = std::time::Instant::now() + RELEASE_WAIT;
        while fs2::FileExt::try_lock_exclusive(&file).is_err() {
            if std::time::Instant::now() >= deadline {
                tracing::warn!(
                    "{} is still locked {RELEASE_WAIT:?} after the store closed",
                    self.lock_file.display()
                );
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        // The lock goes with `file`.
    }
}

impl Store {
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, EngineError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // Durability comes from our own group commit; sled's timer flush
            // only adds fsyncs nobody waits for.
            .flush_every_ms(None)
            .open()
            .map_err(|e| {
                if held_elsewhere(path, &e) {
                    EngineError::Locked {
                        path: path.to_path_buf(),
                    }
                } else {
                    EngineError::Store(e)
                }
            })?;
        match db.get(META_LAYOUT)?.as_deref() {
            Some([v]) if *v == LAYOUT => {}
            None if db.is_empty() => {
                db.insert(META_LAYOUT, &[LAYOUT])?;
            }
            found => {
                return Err(EngineError::Invalid(format!(
                    "{} was written by another version of Kontinuum (layout {:?}, this one reads {LAYOUT}); use a new data directory",
                    path.display(),
                    found.and_then(|b| b.first())
                )));
            }
        }
        let id = store_id(&db)?;
        Ok(Store {
            id,
            writer: Writer::start(db)?,
            release: LockRelease {
                lock_file: path.join("db"),
                wait: true,
            },
            path: path.to_path_buf(),
        })
    }

    /// The store's identity (see [`META_STORE_ID`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Hands the writes to the writer: visible to reads at once, atomic on
    /// disk, durable after [`Store::wait_durable`] with the returned ticket.
    pub fn apply(&self, writes: WriteSet) -> Result<u64, EngineError> {
        self.writer.hand_over(writes.entries)
    }

    /// Fails once a write has failed: nothing may be decided after that,
    /// or memory would run ahead of a store that no longer follows.
    pub fn check(&self) -> Result<(), EngineError> {
        match self.writer.failure() {
            Some(reason) => Err(EngineError::StoreFailed(reason)),
            None => Ok(()),
        }
    }

    /// How long the writer's fsyncs took so far.
    pub fn fsync_times(&self) -> crate::observe::Histogram {
        self.writer.fsync_times()
    }

    /// Bytes the store's directory holds (sled's log, blobs and snapshots);
    /// None when it cannot be read.
    pub fn size_on_disk(&self) -> Option<u64> {
        dir_size(&self.path, 0)
    }

    /// Blocks until everything handed over up to `ticket` is on disk.
    pub fn wait_durable(&self, ticket: u64) -> Result<(), EngineError> {
        self.writer.wait_durable(ticket)
    }

    pub fn next_id(&self) -> Result<NodeId, EngineError> {
        Ok(match self.writer.get(META_NEXT_ID)? {
            Some(bytes) if bytes.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes);
                u64::from_be_bytes(b)
            }
            _ => 1,
        })
    }

    /// The root record of an object, with its root node. A record that does
    /// not decode comes back as a failed stand-in saying so.
    pub fn object(&self, id: &ObjectId) -> Result<Option<StoredRoot>, EngineError> {
        let key = object_key(id);
        match self.writer.get(&key)? {
            Some(b) if !b.is_empty() => Ok(Some(root_record(&key, &b))),
            _ => Ok(None),
        }
    }

    /// Every unfinished tree: its root record and root node. A record that
    /// does not decode comes back as a failed stand-in (state `Failed`), so
    /// that it costs its own object and not the store.
    pub fn active_roots(&self) -> Result<Vec<StoredRoot>, EngineError> {
        let mut out = Vec::new();
        for prefix in [ROOT, OBJECT] {
            for (key, bytes) in self.writer.scan(&[prefix])? {
                if bytes.first() == Some(&1) {
                    out.push(root_record(&key, &bytes));
                }
            }
        }
        Ok(out)
    }

    /// The nodes of a tree other than its root node.
    pub fn tree_nodes(&self, root: NodeId) -> Result<Vec<Node>, EngineError> {
        let mut prefix = [0u8; 9];
        prefix[0] = NODE;
        prefix[1..].copy_from_slice(&root.to_be_bytes());
        let mut out = Vec::new();
        for (_, bytes) in self.writer.scan(&prefix)? {
            out.push(decode("node", &bytes)?);
        }
        Ok(out)
    }

    pub fn debounce(&self, key: &str) -> Result<DebounceState, EngineError> {
        Ok(self
            .writer
            .get(&str_key(DEBOUNCE, key))?
            .map(|b| decode("debounce", &b))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn exclusive(&self, key: &str) -> Result<ExclusiveState, EngineError> {
        Ok(self
            .writer
            .get(&str_key(EXCLUSIVE, key))?
            .map(|b| decode("exclusive", &b))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn items(&self, root: NodeId) -> Result<Vec<Value>, EngineError> {
        Ok(self
            .writer
            .get(&id_key(ITEMS, root))?
            .map(|b| decode("items", &b))
            .transpose()?
            .unwrap_or_default())
    }

    /// Child values of `parent` in creation order.
    pub fn child_values(&self, parent: NodeId) -> Result<Vec<(u32, Value)>, EngineError> {
        let mut prefix = [0u8; 9];
        prefix[0] = VALUE;
        prefix[1..].copy_from_slice(&parent.to_be_bytes());
        let mut out = Vec::new();
        for (key, bytes) in self.writer.scan(&prefix)? {
            let mut idx = [0u8; 4];
            idx.copy_from_slice(&key[9..13]);
            out.push((u32::from_be_bytes(idx), decode("value", &bytes)?));
        }
        Ok(out)
    }

    /// Up to `limit` object ids whose text starts with `prefix`, of `kind`
    /// if given, that come after `after`, in order.
    pub fn objects_page(
        &self,
        prefix: &str,
        kind: Option<ObjectKind>,
        after: Option<&ObjectId>,
        limit: usize,
    ) -> Result<Vec<ObjectId>, EngineError> {
        let prefix = str_key(OBJECT, prefix);
        let mut cursor = after.map(object_key);
        let mut out = Vec::new();
        // Without a namespace the kind is not a key prefix: filter, and read
        // on until the page is full or the objects end.
        loop {
            let chunk = self
                .writer
                .scan_page(&prefix, cursor.as_deref(), limit.max(64))?;
            let last = chunk.len() < limit.max(64);
            for (key, _) in chunk {
                let id = object_id(&key)?;
                cursor = Some(key);
                if kind.is_none_or(|k| k == id.kind) {
                    out.push(id);
                    if out.len() == limit {
                        return Ok(out);
                    }
                }
            }
            if last {
                return Ok(out);
            }
        }
    }

    /// Every object's id, in key order.
    pub fn objects(&self) -> Result<Vec<ObjectId>, EngineError> {
        self.writer
            .scan(&[OBJECT])?
            .into_iter()
            .map(|(key, _)| object_id(&key))
            .collect()
    }

    /// Every object with its root record.
    pub fn object_records(&self) -> Result<Vec<(ObjectId, StoredRoot)>, EngineError> {
        let mut out = Vec::new();
        for (key, bytes) in self.writer.scan(&[OBJECT])? {
            if bytes.is_empty() {
                return Err(corrupt_key(&key, "empty record"));
            }
            out.push((object_id(&key)?, root_record(&key, &bytes)));
        }
        Ok(out)
    }
}

/// The store's id, made (and flushed, so that no status names an id the
/// store forgets in a crash) when the store has none yet: `st-` and 32 hex
/// digits of randomness.
fn store_id(db: &sled::Db) -> Result<String, EngineError> {
    if let Some(bytes) = db.get(META_STORE_ID)? {
        return String::from_utf8(bytes.to_vec()).map_err(|e| EngineError::Corrupt {
            what: "store id".into(),
            detail: e.to_string(),
        });
    }
    let id = format!("st-{:032x}", rand::random::<u128>());
    db.insert(META_STORE_ID, id.as_bytes())?;
    db.flush()?;
    Ok(id)
}

/// The bytes of the files under `dir`. sled's layout is two levels deep;
/// anything deeper is not ours and is not followed.
fn dir_size(dir: &Path, depth: u32) -> Option<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).ok()? {
        // sled removes files of its own accord: one gone meanwhile is not
        // an error, and is no longer on disk anyway.
        let Some(meta) = entry.ok().and_then(|e| e.metadata().ok().map(|m| (e, m))) else {
            continue;
        };
        let (entry, meta) = meta;
        if meta.is_dir() {
            if depth < 3 {
                total += dir_size(&entry.path(), depth + 1).unwrap_or(0);
            }
        } else {
            total += meta.len();
        }
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Value {
        let mut v = Value::from(1);
        for _ in 0..levels {
            v = Value::Array(vec![v]);
        }
        v
    }

    /// The backstop refuses exactly the records it could not read back
    /// (with room to spare), whatever record holds the value.
    #[test]
    fn a_record_is_written_only_if_it_reads_back() {
        for levels in 100..130 {
            let mut writes = WriteSet::default();
            let value = nested(levels);
            match writes.put_value(1, 0, &value) {
                Ok(()) => {
                    let (_, bytes) = &writes.entries[0];
                    let bytes = bytes.as_ref().unwrap();
                    assert!(levels <= RECORD_MAX_NESTING);
                    assert_eq!(decode::<Value>("value", bytes).unwrap(), value);
                }
                Err(e) => {
                    assert!(levels > RECORD_MAX_NESTING, "{levels}: {e}");
                    assert!(writes.entries.is_empty());
                    assert!(e.to_string().contains("not written"), "{e}");
                }
            }
        }
    }
}
