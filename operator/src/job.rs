//! What the Task and HierarchicalFuture controllers have in common: both are
//! *jobs*, resources the engine runs. One reconciler serves both through
//! this trait.

use crate::status::JobStatus;
use kontinuum_api::{HierarchicalFuture, Task};
use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

/// Which kind of job a resource is; part of its engine id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JobKind {
    Task,
    Future,
}

impl JobKind {
    /// As in ids and kubectl's output: `task`, `future`.
    pub fn short(self) -> &'static str {
        match self {
            JobKind::Task => "task",
            JobKind::Future => "future",
        }
    }

    /// The resource kind.
    pub fn kind(self) -> &'static str {
        match self {
            JobKind::Task => "Task",
            JobKind::Future => "HierarchicalFuture",
        }
    }
}

pub trait Job:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    const KIND: JobKind;
    /// `spec.parentRef.name`.
    fn parent(&self) -> Option<&str>;
    /// `spec.ttlAfterFinished`, as written.
    fn ttl_after_finished(&self) -> Option<&str>;
    /// The status as the resource carries it, if any.
    fn current_status(&self) -> Option<JobStatus>;
    /// `spec.pool`: the pool whose workers run it.
    fn pool(&self) -> &str;
    /// The tasks it will queue in its pool once submitted.
    fn tasks_ahead(&self) -> u64 {
        1
    }
}

impl Job for Task {
    const KIND: JobKind = JobKind::Task;
    fn parent(&self) -> Option<&str> {
        self.spec.parent_ref.as_ref().map(|p| p.name.as_str())
    }
    fn ttl_after_finished(&self) -> Option<&str> {
        self.spec.ttl_after_finished.as_deref()
    }
    fn current_status(&self) -> Option<JobStatus> {
        self.status.clone().map(JobStatus::task)
    }
    fn pool(&self) -> &str {
        &self.spec.pool
    }
}

impl Job for HierarchicalFuture {
    const KIND: JobKind = JobKind::Future;
    fn tasks_ahead(&self) -> u64 {
        kontinuum_engine::tasks_ahead(&self.spec)
    }
    fn parent(&self) -> Option<&str> {
        self.spec.parent_ref.as_ref().map(|p| p.name.as_str())
    }
    fn ttl_after_finished(&self) -> Option<&str> {
        self.spec.ttl_after_finished.as_deref()
    }
    fn current_status(&self) -> Option<JobStatus> {
        self.status.clone().map(JobStatus::future)
    }
    fn pool(&self) -> &str {
        &self.spec.pool
    }
}
