//! Who an object is and where it stands: the namespaced id the engine keys
//! objects by (`NAMESPACE/KIND/NAME`) and the phase every status carries.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The namespace of objects that name none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// The two kinds of object the engine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Task,
    Future,
}

impl ObjectKind {
    /// `task` or `future`, as ids and `kubectl get` print them.
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Task => "task",
            ObjectKind::Future => "future",
        }
    }

    /// The custom resource's kind: `Task` or `HierarchicalFuture`.
    pub fn resource_kind(self) -> &'static str {
        match self {
            ObjectKind::Task => "Task",
            ObjectKind::Future => "HierarchicalFuture",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ObjectKind {
    type Err = ObjectIdError;

    /// The spellings kubectl users type, in any case: task, tasks, kt,
    /// future, futures, hf, hierarchicalfuture, hierarchicalfutures.
    fn from_str(word: &str) -> Result<ObjectKind, ObjectIdError> {
        match word.to_ascii_lowercase().as_str() {
            "task" | "tasks" | "kt" => Ok(ObjectKind::Task),
            "future" | "futures" | "hf" | "hierarchicalfuture" | "hierarchicalfutures" => {
                Ok(ObjectKind::Future)
            }
            _ => Err(ObjectIdError::UnknownKind(word.to_string())),
        }
    }
}

/// Why a text is not an object id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectIdError {
    #[error("unknown kind '{0}': use task (tasks, kt) or future (futures, hf, hierarchicalfuture)")]
    UnknownKind(String),
    #[error("'{0}' is not NAMESPACE/KIND/NAME (for example default/task/sum-4-5)")]
    Shape(String),
    #[error("'{text}' has an empty {part}")]
    Empty { text: String, part: &'static str },
}

/// A Task or HierarchicalFuture by namespace, kind and name; shown
/// `NAMESPACE/KIND/NAME`, e.g. `default/task/sum-4-5`. A custom resource is
/// the engine object of the same id.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    pub namespace: String,
    pub kind: ObjectKind,
    pub name: String,
}

impl ObjectId {
    pub fn new(namespace: impl Into<String>, kind: ObjectKind, name: impl Into<String>) -> Self {
        ObjectId {
            namespace: namespace.into(),
            kind,
            name: name.into(),
        }
    }

    pub fn task(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectId::new(namespace, ObjectKind::Task, name)
    }

    pub fn future(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectId::new(namespace, ObjectKind::Future, name)
    }

    /// Refuses parts that would print as another id (a `/` inside) or as
    /// none (empty), for ids built from parts rather than parsed.
    pub fn check(&self) -> Result<(), ObjectIdError> {
        let text = self.to_string();
        match text.parse::<ObjectId>() {
            Ok(parsed) if parsed == *self => Ok(()),
            Ok(_) => Err(ObjectIdError::Shape(text)),
            Err(e) => Err(e),
        }
    }

    /// `KIND/NAME` without the namespace, as `kubectl get` prints names
    /// (`task/sum-4-5`).
    pub fn short(&self) -> String {
        format!("{}/{}", self.kind, self.name)
    }

    /// Parses `NAMESPACE/KIND/NAME`, or `KIND/NAME` in `namespace`.
    pub fn parse_in(text: &str, namespace: &str) -> Result<ObjectId, ObjectIdError> {
        match text.split('/').count() {
            2 => format!("{namespace}/{text}").parse().map_err(|e| match e {
                ObjectIdError::Shape(_) => ObjectIdError::Shape(text.to_string()),
                other => other,
            }),
            _ => text.parse(),
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

impl FromStr for ObjectId {
    type Err = ObjectIdError;

    fn from_str(text: &str) -> Result<ObjectId, ObjectIdError> {
        let parts: Vec<&str> = text.split('/').collect();
        let [namespace, kind, name] = parts[..] else {
            return Err(ObjectIdError::Shape(text.to_string()));
        };
        for (part, value) in [("namespace", namespace), ("kind", kind), ("name", name)] {
            if value.trim().is_empty() {
                return Err(ObjectIdError::Empty {
                    text: text.to_string(),
                    part,
                });
            }
        }
        Ok(ObjectId::new(namespace, kind.parse()?, name))
    }
}

impl Serialize for ObjectId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ObjectId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<ObjectId, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Pending, Queued, Running, Succeeded, Failed, Cancelled or Merged.
//
// Pending: accepted, not started (delayed, debounced, or held by an
// exclusive section). Queued: a task waiting for a worker. Merged: folded
// into another run by debounce or an exclusive section. (Said here rather
// than on the variants, so the CRD's enum lists them in this order.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum Phase {
    Pending,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
    Merged,
}

impl Phase {
    /// True once the outcome can no longer change.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Phase::Succeeded | Phase::Failed | Phase::Cancelled | Phase::Merged
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Pending => "Pending",
            Phase::Queued => "Queued",
            Phase::Running => "Running",
            Phase::Succeeded => "Succeeded",
            Phase::Failed => "Failed",
            Phase::Cancelled => "Cancelled",
            Phase::Merged => "Merged",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_both_ways() {
        let id = ObjectId::task("default", "sum-4-5");
        assert_eq!(id.to_string(), "default/task/sum-4-5");
        assert_eq!(id.short(), "task/sum-4-5");
        assert_eq!("default/task/sum-4-5".parse::<ObjectId>(), Ok(id.clone()));
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"default/task/sum-4-5\"");
        assert_eq!(serde_json::from_str::<ObjectId>(&json).unwrap(), id);
    }

    #[test]
    fn every_kind_alias_is_accepted_in_any_case() {
        for alias in ["task", "tasks", "kt", "Task", "KT"] {
            let id: ObjectId = format!("ns/{alias}/x").parse().unwrap();
            assert_eq!(id.kind, ObjectKind::Task, "{alias}");
        }
        for alias in [
            "future",
            "futures",
            "hf",
            "hierarchicalfuture",
            "hierarchicalfutures",
            "HierarchicalFuture",
        ] {
            let id: ObjectId = format!("ns/{alias}/x").parse().unwrap();
            assert_eq!(id.to_string(), "ns/future/x", "{alias}");
        }
    }

    #[test]
    fn bad_ids_say_what_is_wrong() {
        let err = |t: &str| t.parse::<ObjectId>().unwrap_err().to_string();
        assert!(err("sum-4-5").contains("not NAMESPACE/KIND/NAME"));
        assert!(err("a/b/c/d").contains("not NAMESPACE/KIND/NAME"));
        assert!(err("ns/pod/x").contains("unknown kind 'pod'"));
        assert!(err("ns/task/").contains("empty name"));
        assert!(err("/task/x").contains("empty namespace"));
    }

    #[test]
    fn kind_slash_name_takes_the_given_namespace() {
        let id = ObjectId::parse_in("hf/squares", "team-a").unwrap();
        assert_eq!(id.to_string(), "team-a/future/squares");
        let full = ObjectId::parse_in("b/task/x", "team-a").unwrap();
        assert_eq!(full.namespace, "b");
        let e = ObjectId::parse_in("squares", "team-a").unwrap_err();
        assert_eq!(e, ObjectIdError::Shape("squares".into()));
    }

    #[test]
    fn ids_built_from_parts_are_checked() {
        assert!(ObjectId::task("ns", "x").check().is_ok());
        assert!(ObjectId::task("ns", "a/b").check().is_err());
        assert!(ObjectId::task("", "x").check().is_err());
    }

    #[test]
    fn phases_serialize_as_their_names() {
        assert_eq!(serde_json::to_value(Phase::Merged).unwrap(), "Merged");
        assert!(Phase::Cancelled.is_final() && !Phase::Queued.is_final());
        let all = [
            Phase::Pending,
            Phase::Queued,
            Phase::Running,
            Phase::Succeeded,
            Phase::Failed,
            Phase::Cancelled,
            Phase::Merged,
        ];
        for p in all {
            assert_eq!(serde_json::to_value(p).unwrap(), p.as_str());
        }
    }
}
