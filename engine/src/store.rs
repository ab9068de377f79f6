//! The on-disk layout: one sled tree, records keyed by a one-byte prefix, so
//! that every change a decision makes lands in one atomic batch. Group commit
//! makes an acknowledged change durable without one fsync per call.

use crate::model::{DebounceState, ExclusiveState, Node, ObjectRecord, Root, RootState};
use crate::types::EngineError;
use kontinuum_api::wire::NodeId;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

const NODE: u8 = b'n';
const ROOT: u8 = b'r';
const VALUE: u8 = b'v';
const OBJECT: u8 = b'o';
const DEBOUNCE: u8 = b'd';
const EXCLUSIVE: u8 = b'x';
const ITEMS: u8 = b'i';
const META_NEXT_ID: &[u8] = b"m/next-id";

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

fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T, EngineError> {
    serde_json::from_slice(bytes).map_err(|e| EngineError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
}

/// The writes of one decision, applied atomically.
#[derive(Default)]
pub struct WriteSet {
    batch: sled::Batch,
    pub dirty: bool,
}

impl WriteSet {
    fn put(&mut self, key: &[u8], value: Vec<u8>) {
        self.batch.insert(key, value);
        self.dirty = true;
    }

    fn del(&mut self, key: &[u8]) {
        self.batch.remove(key);
        self.dirty = true;
    }

    /// A node other than a root node (those travel inside their root record).
    pub fn put_node(&mut self, node: &Node) -> Result<(), EngineError> {
        self.put(&node_key(node.root, node.id), encode("node", node)?);
        Ok(())
    }

    /// The root record, with the tree's root node inside it, behind one
    /// byte of state so that recovery can skip finished trees unread.
    pub fn put_root(&mut self, root: &Root, node: Option<&Node>) -> Result<(), EngineError> {
        let mut bytes = vec![u8::from(root.state == RootState::Active)];
        serde_json::to_writer(&mut bytes, &StoredRootRef { root, node }).map_err(|e| {
            EngineError::Corrupt {
                what: "root".into(),
                detail: e.to_string(),
            }
        })?;
        self.put(&id_key(ROOT, root.id), bytes);
        Ok(())
    }

    pub fn put_value(
        &mut self,
        parent: NodeId,
        index: u32,
        value: &Value,
    ) -> Result<(), EngineError> {
        self.put(&value_key(parent, index), encode("value", value)?);
        Ok(())
    }

    pub fn del_value(&mut self, parent: NodeId, index: u32) {
        self.del(&value_key(parent, index));
    }

    pub fn put_object(&mut self, name: &str, record: &ObjectRecord) -> Result<(), EngineError> {
        self.put(&str_key(OBJECT, name), encode("object", record)?);
        Ok(())
    }

    pub fn put_debounce(&mut self, key: &str, state: &DebounceState) -> Result<(), EngineError> {
        self.put(&str_key(DEBOUNCE, key), encode("debounce", state)?);
        Ok(())
    }

    pub fn put_exclusive(&mut self, key: &str, state: &ExclusiveState) -> Result<(), EngineError> {
        if state.holder.is_none() && state.rerun.is_none() {
            self.del(&str_key(EXCLUSIVE, key));
        } else {
            self.put(&str_key(EXCLUSIVE, key), encode("exclusive", state)?);
        }
        Ok(())
    }

    pub fn put_items(&mut self, root: NodeId, items: &[Value]) -> Result<(), EngineError> {
        self.put(&id_key(ITEMS, root), encode("items", &items)?);
        Ok(())
    }

    pub fn put_next_id(&mut self, next: NodeId) {
        self.put(META_NEXT_ID, next.to_be_bytes().to_vec());
    }
}

/// The sled database plus group commit.
pub struct Store {
    db: sled::Db,
    commit: Mutex<CommitState>,
    flushed: Condvar,
}

#[derive(Default)]
struct CommitState {
    applied: u64,
    durable: u64,
    flushing: bool,
}

impl Store {
    pub fn open(path: &std::path::Path, cache_bytes: u64) -> Result<Store, EngineError> {
        let db = sled::Config::new()
            .path(path)
            .cache_capacity(cache_bytes)
            // Durability comes from our own group commit; sled's timer flush
            // only adds fsyncs nobody waits for.
            .flush_every_ms(None)
            .open()?;
        Ok(Store {
            db,
            commit: Mutex::new(CommitState::default()),
            flushed: Condvar::new(),
        })
    }

    /// Applies the writes atomically (visible at once, durable after
    /// [`Store::wait_durable`] with the returned ticket).
    pub fn apply(&self, writes: WriteSet) -> Result<u64, EngineError> {
        if !writes.dirty {
            return Ok(0);
        }
        self.db.apply_batch(writes.batch)?;
        let mut c = self.commit.lock();
        c.applied += 1;
        Ok(c.applied)
    }

    /// Blocks until everything applied up to `ticket` is on disk. One caller
    /// flushes for all who wait meanwhile.
    pub fn wait_durable(&self, ticket: u64) -> Result<(), EngineError> {
        let mut c = self.commit.lock();
        loop {
            if c.durable >= ticket {
                return Ok(());
            }
            if c.flushing {
                self.flushed.wait(&mut c);
                continue;
            }
            c.flushing = true;
            let target = c.applied;
            drop(c);
            let result = self.db.flush();
            c = self.commit.lock();
            c.flushing = false;
            if result.is_ok() {
                c.durable = c.durable.max(target);
            }
            self.flushed.notify_all();
            result?;
        }
    }

    pub fn next_id(&self) -> Result<NodeId, EngineError> {
        Ok(match self.db.get(META_NEXT_ID)? {
            Some(bytes) if bytes.len() == 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&bytes);
                u64::from_be_bytes(b)
            }
            _ => 1,
        })
    }

    pub fn root(&self, id: NodeId) -> Result<Option<Root>, EngineError> {
        match self.db.get(id_key(ROOT, id))? {
            Some(b) if !b.is_empty() => Ok(Some(decode::<StoredRoot>("root", &b[1..])?.root)),
            _ => Ok(None),
        }
    }

    /// A root record with its root node.
    pub fn stored_root(&self, id: NodeId) -> Result<Option<StoredRoot>, EngineError> {
        match self.db.get(id_key(ROOT, id))? {
            Some(b) if !b.is_empty() => Ok(Some(decode("root", &b[1..])?)),
            _ => Ok(None),
        }
    }

    /// Every unfinished tree: its root record and root node.
    pub fn active_roots(&self) -> Result<Vec<StoredRoot>, EngineError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([ROOT]) {
            let (_, bytes) = entry?;
            if bytes.first() == Some(&1) {
                out.push(decode("root", &bytes[1..])?);
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
        for entry in self.db.scan_prefix(prefix) {
            let (_, bytes) = entry?;
            out.push(decode("node", &bytes)?);
        }
        Ok(out)
    }

    pub fn object(&self, name: &str) -> Result<Option<ObjectRecord>, EngineError> {
        self.db
            .get(str_key(OBJECT, name))?
            .map(|b| decode("object", &b))
            .transpose()
    }

    pub fn debounce(&self, key: &str) -> Result<DebounceState, EngineError> {
        Ok(self
            .db
            .get(str_key(DEBOUNCE, key))?
            .map(|b| decode("debounce", &b))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn exclusive(&self, key: &str) -> Result<ExclusiveState, EngineError> {
        Ok(self
            .db
            .get(str_key(EXCLUSIVE, key))?
            .map(|b| decode("exclusive", &b))
            .transpose()?
            .unwrap_or_default())
    }

    pub fn items(&self, root: NodeId) -> Result<Vec<Value>, EngineError> {
        Ok(self
            .db
            .get(id_key(ITEMS, root))?
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
        for entry in self.db.scan_prefix(prefix) {
            let (key, bytes) = entry?;
            let mut idx = [0u8; 4];
            idx.copy_from_slice(&key[9..13]);
            out.push((u32::from_be_bytes(idx), decode("value", &bytes)?));
        }
        Ok(out)
    }

    /// Every object name with its record.
    pub fn objects(&self) -> Result<Vec<(String, ObjectRecord)>, EngineError> {
        let mut out = Vec::new();
        for entry in self.db.scan_prefix([OBJECT]) {
            let (key, bytes) = entry?;
            let name = String::from_utf8_lossy(&key[1..]).into_owned();
            out.push((name, decode("object", &bytes)?));
        }
        Ok(out)
    }
}
