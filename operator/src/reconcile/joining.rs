//! Which resources join a future's tree when that future is submitted.
//!
//! `kubectl apply -f` creates a parent future and the resources that name it
//! in `spec.parentRef` within milliseconds, but their reconciles run in any
//! order. Were each submitted on its own, a short parent could finish before
//! its children joined (they would then fail `ParentFinished`), and children
//! would join in reconcile order. So the parent's submission carries every
//! resource that already names it (and theirs, transitively): parents
//! first, each parent's children in creation order, ties by kind and name
//! — what `kontinuum run` does with the same file. Resources created later
//! join a parent that is still running, in their own reconcile.
//!
//! A future is submitted once it is [`SETTLE`] old, so that the resources
//! applied with it exist by then: `kubectl apply` creates one document
//! after another, and a parent reconciled at once could finish before its
//! children were created.

use crate::bridge::JobKey;
use std::collections::BTreeMap;
use std::time::Duration;

/// How old a future must be before it is submitted. `creationTimestamp`
/// has whole seconds, so the real wait is between one and two seconds.
pub const SETTLE: Duration = Duration::from_secs(2);

/// How long a future created at `created_ms` (ms since the epoch) still
/// waits before its submission at `now_ms`; None once it may go.
pub fn settle_left(created_ms: Option<i64>, now_ms: u64) -> Option<Duration> {
    let created = u64::try_from(created_ms?).ok()?;
    let ready_at = created.saturating_add(SETTLE.as_millis() as u64);
    (now_ms < ready_at).then(|| Duration::from_millis(ready_at - now_ms))
}

/// A resource of the namespace as the controllers' caches hold it.
#[derive(Clone, Debug)]
pub struct Candidate {
    pub key: JobKey,
    pub uid: String,
    /// `spec.parentRef.name`.
    pub parent: Option<String>,
    /// `metadata.creationTimestamp` (RFC 3339, seconds).
    pub created: String,
    pub deleting: bool,
    /// The engine already holds it (joined earlier, or on its own).
    pub held: bool,
}

/// Indexes into `candidates` of the resources to submit with the future
/// `root`, parents before their children.
pub fn joining(root: &str, candidates: &[Candidate]) -> Vec<usize> {
    let mut children: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, c) in candidates.iter().enumerate() {
        if let Some(parent) = c.parent.as_deref()
            && !c.deleting
            && !c.held
        {
            children.entry(parent).or_default().push(i);
        }
    }
    for list in children.values_mut() {
        list.sort_by(|&a, &b| {
            let (a, b) = (&candidates[a], &candidates[b]);
            (&a.created, &a.key).cmp(&(&b.created, &b.key))
        });
    }
    let mut out = Vec::new();
    // The root is being submitted already (a cycle would list it again).
    let mut seen: std::collections::HashSet<usize> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.key.kind == crate::job::JobKind::Future && c.key.name == root)
        .map(|(i, _)| i)
        .collect();
    let mut level = vec![root.to_string()];
    // Breadth first: every parent is out before its children; `seen` ends
    // a parentRef cycle.
    while !level.is_empty() {
        let mut next = Vec::new();
        for parent in &level {
            for &i in children.get(parent.as_str()).into_iter().flatten() {
                if seen.insert(i) {
                    out.push(i);
                    if candidates[i].key.kind == crate::job::JobKind::Future {
                        next.push(candidates[i].key.name.clone());
                    }
                }
            }
        }
        level = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::JobKind;

    fn c(kind: JobKind, name: &str, parent: Option<&str>, created: &str) -> Candidate {
        Candidate {
            key: JobKey {
                namespace: "ns".into(),
                kind,
                name: name.into(),
            },
            uid: format!("uid-{name}"),
            parent: parent.map(str::to_string),
            created: created.into(),
            deleting: false,
            held: false,
        }
    }

    fn names(cands: &[Candidate], idx: &[usize]) -> Vec<String> {
        idx.iter().map(|&i| cands[i].key.name.clone()).collect()
    }

    #[test]
    fn children_in_creation_order_then_grandchildren() {
        let t0 = "2026-11-29T10:00:00Z";
        let t1 = "2026-11-29T10:00:01Z";
        let cands = vec![
            c(JobKind::Task, "late", Some("report"), t1),
            c(JobKind::Future, "sub", Some("report"), t0),
            c(JobKind::Task, "grand", Some("sub"), t0),
            c(JobKind::Task, "alpha", Some("report"), t0),
            c(JobKind::Task, "other", Some("elsewhere"), t0),
            c(JobKind::Future, "report", None, t0),
        ];
        assert_eq!(
            names(&cands, &joining("report", &cands)),
            ["alpha", "sub", "late", "grand"]
        );
    }

    #[test]
    fn held_or_deleting_resources_are_left_out_with_their_subtrees() {
        let t = "2026-11-29T10:00:00Z";
        let mut cands = vec![
            c(JobKind::Future, "sub", Some("report"), t),
            c(JobKind::Task, "under-sub", Some("sub"), t),
            c(JobKind::Task, "gone", Some("report"), t),
            c(JobKind::Task, "kept", Some("report"), t),
        ];
        cands[0].held = true;
        cands[2].deleting = true;
        assert_eq!(names(&cands, &joining("report", &cands)), ["kept"]);
        // The held future's own children join it in their own reconcile.
        assert_eq!(names(&cands, &joining("sub", &cands)), ["under-sub"]);
    }

    #[test]
    fn a_new_future_settles_before_it_is_submitted() {
        let created = 1_000_000i64;
        assert_eq!(
            settle_left(Some(created), 1_000_500),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(settle_left(Some(created), 1_002_000), None);
        assert_eq!(settle_left(None, 5), None, "no timestamp: no wait");
    }

    #[test]
    fn a_cycle_ends() {
        let t = "2026-11-29T10:00:00Z";
        let cands = vec![
            c(JobKind::Future, "a", Some("b"), t),
            c(JobKind::Future, "b", Some("a"), t),
        ];
        assert_eq!(names(&cands, &joining("a", &cands)), ["b"]);
        assert!(joining("nobody", &cands).is_empty());
    }
}
