//! Kontinuum's shared vocabulary: custom resource types, FnRef and stable ids,
//! durations, reducers and the manifest validation that `kontinuum run` and the
//! CRD rules agree on. Pure: no async runtime, no I/O.

pub mod accumulator;
pub mod canonical;
pub mod common;
pub mod crds;
pub mod duration;
pub mod endpoints;
pub mod fnref;
pub mod future;
pub mod limits;
pub mod object;
pub mod reducer;
pub mod schema;
pub mod task;
pub mod validate;
pub mod work;
pub mod workerpool;

pub use fnref::{BindError, FnRef};
pub use future::{FutureStatus, HierarchicalFuture, HierarchicalFutureSpec, ParentRef};
pub use object::{DEFAULT_NAMESPACE, ObjectId, ObjectIdError, ObjectKind, Phase};
pub use reducer::{BuiltinReducer, Reducer};
pub use task::{Task, TaskSpec, TaskStatus};
pub use workerpool::{WorkerPool, WorkerPoolSpec, WorkerPoolStatus};

pub const GROUP: &str = "kontinuum.dev";
pub const VERSION: &str = "v1alpha1";
pub const API_VERSION: &str = "kontinuum.dev/v1alpha1";
