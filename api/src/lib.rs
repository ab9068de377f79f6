//! Kontinuum's shared vocabulary: custom resource types, FnRef and stable ids,
//! durations, reducers and the manifest validation that `kontinuum run` and the
//! CRD rules agree on. Pure: no async runtime, no I/O.
//!
//! Modules depend on each other in layers, each only on those after it
//! (below it, or to its right on its line; tests/tests/layering.rs checks
//! this list against the `crate::` paths of the source):
//!
//! ```text
//! validate     manifests checked and typed: kind and metadata, the schema
//!              walk, the rules; one function per rule for the engine
//! crds         the CRDs generated from the types
//! endpoints    HTTP bodies between workers, CLI and server
//! task future workerpool work     the types (work: engine <-> worker)
//! common accumulator reducer fnref schema
//! messages limits duration canonical object     leaves: nothing from this crate
//! ```
//!
//! `messages` holds the words and patterns that the types' schemas and the
//! validator share, so the types never reach up into the validator.

pub mod accumulator;
pub mod canonical;
pub mod common;
pub mod crds;
pub mod duration;
pub mod endpoints;
pub mod fnref;
pub mod future;
pub mod limits;
pub mod messages;
pub mod object;
pub mod reducer;
pub mod schema;
pub mod task;
pub mod validate;
pub mod work;
pub mod workerpool;

pub use fnref::{BindError, FnRef, FnValueError};
pub use future::{FutureStatus, HierarchicalFuture, HierarchicalFutureSpec, ParentRef};
pub use object::{DEFAULT_NAMESPACE, ObjectId, ObjectIdError, ObjectKind, Phase};
pub use reducer::{BuiltinReducer, Reducer, ReducerError};
pub use task::{Task, TaskSpec, TaskStatus};
pub use workerpool::{WorkerPool, WorkerPoolSpec, WorkerPoolStatus, WorkerSpec};

pub const GROUP: &str = "kontinuum.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "kontinuum.dev/v1alpha1";
