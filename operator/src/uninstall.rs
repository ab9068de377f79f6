//! `kontinuum-operator uninstall`: what the chart's pre-delete hook runs
//! while the release's operator still runs.
//!
//! Every Task and HierarchicalFuture carries the `kontinuum.dev/cancel`
//! finalizer, which only a running operator releases. Once `helm uninstall`
//! has removed the operator, a resource left behind could never be deleted,
//! and `kubectl delete crd` would wait on it for ever. So before the
//! release goes, this command deletes the Kontinuum resources of the
//! namespaces the release serves: WorkerPools (their Deployments follow by
//! garbage collection), Tasks and futures, whose work the operator cancels
//! before it releases each finalizer. It waits for that up to `--timeout`;
//! what still holds the finalizer then (the operator is down, or too slow)
//! it releases itself, since nothing will run that work once the release
//! is gone.
//!
//! The decision of each round is [`round`], pure; the rest is I/O.

use std::time::{Duration, Instant};

use kontinuum_api::{HierarchicalFuture, Task, WorkerPool};
use kube::api::{Api, DeleteParams, ListParams, PartialObjectMeta, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::Error;
use crate::config::duration;
use crate::reconcile::FINALIZER;
use crate::reconcile::finalizer::release_patch;

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "kontinuum-operator uninstall",
    bin_name = "kontinuum-operator uninstall",
    about = "Delete the Kontinuum resources of the namespaces a release serves, while its operator \
             still runs (the chart's pre-delete hook)",
    long_about = "Deletes every WorkerPool, Task and HierarchicalFuture in the given namespaces \
                  (default: all) and waits until the running operator has cancelled their \
                  work and released the kontinuum.dev/cancel finalizer. What still holds the \
                  finalizer after --timeout is released by this command, so no resource is \
                  left that cannot be deleted. Exits 0 when none is left holding it."
)]
pub struct UninstallFlags {
    /// Only these namespaces (repeat the flag, or a comma-separated list in
    /// the variable); default: every namespace.
    #[arg(
        long = "namespace",
        env = "KONTINUUM_NAMESPACES",
        value_name = "NS",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// How long the operator gets to cancel and release the resources
    /// before this command releases the rest itself.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = duration)]
    pub timeout: Duration,
    /// How often to look again.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub poll: Duration,
}

/// The kinds this command deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    WorkerPool,
    Task,
    Future,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::WorkerPool => "WorkerPool",
            Kind::Task => "Task",
            Kind::Future => "HierarchicalFuture",
        }
    }
}

/// One resource as a round sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub deleting: bool,
    pub finalizers: Vec<String>,
}

impl Seen {
    fn holds_ours(&self) -> bool {
        self.finalizers.iter().any(|f| f == FINALIZER)
    }
}

/// What to do to one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    Delete,
    /// Remove our finalizer ourselves: the operator did not in time.
    Release,
}

/// A round's decision: the steps, and whether the work is done (nothing
/// left undeleted, nothing holding our finalizer).
pub fn round(seen: &[Seen], overdue: bool) -> (Vec<(usize, Step)>, bool) {
    let mut steps = Vec::new();
    for (i, s) in seen.iter().enumerate() {
        if !s.deleting {
            steps.push((i, Step::Delete));
        }
        if overdue && s.holds_ours() {
            steps.push((i, Step::Release));
        }
    }
    let done = seen.iter().all(|s| s.deleting && !s.holds_ours());
    (steps, done)
}

/// Runs the command: Ok when nothing is left holding the finalizer.
pub async fn uninstall(flags: UninstallFlags) -> Result<(), Error> {
    let client = Client::try_default()
        .await
        .map_err(|e| Error::Config(e.to_string()))?;
    let scopes: Vec<Option<String>> = if flags.namespaces.is_empty() {
        vec![None]
    } else {
        flags.namespaces.iter().cloned().map(Some).collect()
    };
    let started = Instant::now();
    // Released by us after the timeout, a resource needs a moment more to go.
    let give_up = flags.timeout + Duration::from_secs(30);
    let (mut deleted, mut released) = (0usize, 0usize);
    let mut last_report = None::<Instant>;
    loop {
        let overdue = started.elapsed() >= flags.timeout;
        let seen = look(&client, &scopes).await?;
        let (steps, done) = round(&seen, overdue);
        if done {
            tracing::info!(
                deleted,
                released_here = released,
                seconds = started.elapsed().as_secs_f64(),
                "every Kontinuum resource of the release's namespaces is gone or released"
            );
            return Ok(());
        }
        if started.elapsed() >= give_up {
            let left: Vec<String> = seen
                .iter()
                .filter(|s| !s.deleting || s.holds_ours())
                .map(|s| format!("{} {}/{}", s.kind.name(), s.namespace, s.name))
                .collect();
            return Err(Error::Invalid(format!(
                "{} resource(s) still undeleted or holding {FINALIZER} after {:?}, e.g. {}; \
                 see them with `kubectl get tasks,futures,workerpools -A`",
                left.len(),
                give_up,
                left[..left.len().min(10)].join(", ")
            )));
        }
        for (i, step) in steps {
            let s = &seen[i];
            let outcome = match step {
                Step::Delete => delete(&client, s).await.map(|()| deleted += 1),
                Step::Release => release(&client, s).await.map(|()| released += 1),
            };
            // Gone in between, or the list moved: the next round sees it.
            if let Err(e) = outcome {
                tracing::debug!(kind = s.kind.name(), namespace = %s.namespace, name = %s.name, error = %e, "step not taken");
            }
        }
        if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
            let holding = seen.iter().filter(|s| s.holds_ours()).count();
            tracing::info!(
                left = seen.len(),
                holding,
                overdue,
                "waiting for the operator to cancel the resources' work and release them"
            );
            last_report = Some(Instant::now());
        }
        tokio::time::sleep(flags.poll).await;
    }
}

async fn look(client: &Client, scopes: &[Option<String>]) -> Result<Vec<Seen>, Error> {
    let mut seen = Vec::new();
    for scope in scopes {
        seen.extend(list::<WorkerPool>(client, scope.as_deref(), Kind::WorkerPool).await?);
        seen.extend(list::<Task>(client, scope.as_deref(), Kind::Task).await?);
        seen.extend(list::<HierarchicalFuture>(client, scope.as_deref(), Kind::Future).await?);
    }
    Ok(seen)
}

/// The three kinds as the API calls below need them.
trait Namespaced:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
{
}
impl<K> Namespaced for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
{
}

fn api<K: Namespaced>(client: &Client, namespace: Option<&str>) -> Api<K> {
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

async fn list<K: Namespaced>(
    client: &Client,
    namespace: Option<&str>,
    kind: Kind,
) -> Result<Vec<Seen>, Error> {
    let objects = api::<K>(client, namespace)
        .list_metadata(&ListParams::default())
        .await
        .map_err(Error::kube("list the resources to delete"))?;
    Ok(objects
        .items
        .into_iter()
        .map(|o: PartialObjectMeta<K>| Seen {
            kind,
            namespace: o.namespace().unwrap_or_default(),
            name: o.name_any(),
            uid: o.uid().unwrap_or_default(),
            deleting: o.metadata.deletion_timestamp.is_some(),
            finalizers: o.finalizers().to_vec(),
        })
        .collect())
}

async fn delete(client: &Client, s: &Seen) -> Result<(), Error> {
    async fn delete_as<K: Namespaced>(client: &Client, s: &Seen) -> Result<(), kube::Error> {
        let api = api::<K>(client, Some(&s.namespace));
        api.delete(&s.name, &DeleteParams::background())
            .await
            .map(|_| ())
    }
    let result = match s.kind {
        Kind::WorkerPool => delete_as::<WorkerPool>(client, s).await,
        Kind::Task => delete_as::<Task>(client, s).await,
        Kind::Future => delete_as::<HierarchicalFuture>(client, s).await,
    };
    result.map_err(Error::kube("delete a resource"))
}

async fn release(client: &Client, s: &Seen) -> Result<(), Error> {
    async fn patch_as<K: Namespaced>(
        client: &Client,
        s: &Seen,
        patch: &Patch<()>,
    ) -> Result<(), kube::Error> {
        let api = api::<K>(client, Some(&s.namespace));
        api.patch_metadata(&s.name, &PatchParams::default(), patch)
            .await
            .map(|_| ())
    }
    let Some(patch) = release_patch(&s.uid, &s.finalizers) else {
        return Ok(());
    };
    let patch = Patch::Json::<()>(patch);
    let result = match s.kind {
        Kind::WorkerPool => patch_as::<WorkerPool>(client, s, &patch).await,
        Kind::Task => patch_as::<Task>(client, s, &patch).await,
        Kind::Future => patch_as::<HierarchicalFuture>(client, s, &patch).await,
    };
    result.map_err(Error::kube("release the finalizer"))?;
    tracing::warn!(kind = s.kind.name(), namespace = %s.namespace, name = %s.name,
        "released {FINALIZER} here: the operator had not within the timeout");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(name: &str, deleting: bool, ours: bool) -> Seen {
        Seen {
            kind: Kind::Task,
            namespace: "jobs".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
            deleting,
            finalizers: if ours { vec![FINALIZER.into()] } else { vec![] },
        }
    }

    #[test]
    fn deletes_what_is_not_deleting_and_leaves_the_release_to_the_operator() {
        let all = [
            seen("new", false, true),
            seen("going", true, true),
            seen("bare", false, false),
        ];
        let (steps, done) = round(&all, false);
        assert_eq!(steps, vec![(0, Step::Delete), (2, Step::Delete)]);
        assert!(!done);
    }

    #[test]
    fn after_the_timeout_releases_every_holder_itself() {
        let all = [seen("new", false, true), seen("going", true, true)];
        let (steps, done) = round(&all, true);
        assert_eq!(
            steps,
            vec![(0, Step::Delete), (0, Step::Release), (1, Step::Release)]
        );
        assert!(!done);
    }

    #[test]
    fn done_when_nothing_is_undeleted_or_held() {
        assert!(round(&[], false).1);
        // Deleting and held only by someone else's finalizer: not ours to wait for.
        let mut other = seen("other", true, false);
        other.finalizers = vec!["example.com/keep".into()];
        assert!(round(&[other], false).1);
        assert!(!round(&[seen("held", true, true)], false).1);
        assert!(!round(&[seen("undeleted", false, false)], false).1);
    }

    #[test]
    fn flags_parse_like_the_hook_passes_them() {
        use clap::Parser;
        let f = UninstallFlags::try_parse_from([
            "kontinuum-operator uninstall",
            "--namespace=a,b",
            "--timeout=90s",
        ])
        .unwrap();
        assert_eq!(f.namespaces, ["a", "b"]);
        assert_eq!(f.timeout, Duration::from_secs(90));
        assert_eq!(f.poll, Duration::from_secs(1));
        let bad = UninstallFlags::try_parse_from(["x", "--timeout=soon"]).unwrap_err();
        assert!(bad.to_string().contains("--timeout"), "{bad}");
    }
}
