//! Records the store cannot decode. One such record fails its own object,
//! with a status that says why, and the rest of the store opens and runs:
//! a bad record (from an older bug, a disk fault, a hand edit) must not
//! take every other object down with it.

use crate::records::{Root, RootKind, RootState};
use kontinuum_api::common::{ErrorInfo, ErrorKind};
use kontinuum_api::work::NodeId;
use kontinuum_api::{DEFAULT_NAMESPACE, ObjectId};
use serde::Deserialize;

/// What can usually still be read of a root record that does not decode as
/// a whole (serde_json skips the rest without a depth limit).
#[derive(Deserialize)]
struct Sniff {
    root: SniffRoot,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SniffRoot {
    id: NodeId,
    kind: RootKind,
    #[serde(default)]
    accepted_ms: u64,
}

/// The message an object's status carries when part of it cannot be read.
pub fn message(what: &str, detail: &str) -> String {
    format!(
        "the store cannot read this object's {what} record ({detail}), so the object is failed; the rest of the store runs on. Submit it again under another name"
    )
}

pub fn error(what: &str, detail: &str) -> ErrorInfo {
    ErrorInfo {
        message: message(what, detail),
        kind: ErrorKind::Permanent,
        attempt: 0,
    }
}

/// A failed stand-in for a root record that does not decode: `bytes` is the
/// record without its state byte, `object` the id in its key (objects) or
/// `id` (spawned roots).
pub fn failed_root(
    object: Option<ObjectId>,
    id: Option<NodeId>,
    bytes: &[u8],
    detail: &str,
) -> Root {
    let sniff = serde_json::from_slice::<Sniff>(bytes).ok().map(|s| s.root);
    let namespace = object
        .as_ref()
        .map_or(DEFAULT_NAMESPACE, |o| o.namespace.as_str())
        .to_string();
    let mut root = Root::new_task(
        sniff.as_ref().map(|s| s.id).or(id).unwrap_or(0),
        object,
        &namespace,
        "",
        String::new(),
        sniff.as_ref().map_or(0, |s| s.accepted_ms),
    );
    root.kind = sniff.map_or(RootKind::Task, |s| s.kind);
    root.state = RootState::Failed;
    root.error = Some(error("root", detail));
    root
}
