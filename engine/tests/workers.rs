//! What the engine knows about who holds which work: leases per worker (for
//! task-aware scale-down) and the namespace of a lease (for confining a
//! worker to its namespace).

mod common;

use common::*;
use kontinuum_api::work::{Completion, Outcome};
use kontinuum_engine::Submission;
use serde_json::json;
use std::time::Duration;

fn sleepers(namespace: &str, n: usize) -> Vec<Submission> {
    (0..n)
        .map(|i| {
            Submission::task(
                namespace,
                &format!("t{i}"),
                yaml("call: {function: t.echo}\npool: gpu"),
            )
        })
        .collect()
}

#[test]
fn leases_are_counted_per_worker_until_they_end() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    engine.submit(sleepers("team-a", 5)).unwrap();
    let a = engine
        .lease("gpu", Some("team-a"), "pod-a", 3, Duration::ZERO)
        .unwrap();
    let b = engine
        .lease("gpu", Some("team-a"), "pod-b", 3, Duration::ZERO)
        .unwrap();
    assert_eq!((a.len(), b.len()), (3, 2));
    let held = engine.running_by_worker("team-a", "gpu");
    assert_eq!(held.get("pod-a"), Some(&3));
    assert_eq!(held.get("pod-b"), Some(&2));
    assert!(engine.running_by_worker("team-b", "gpu").is_empty());
    assert!(engine.running_by_worker("team-a", "default").is_empty());

    // A completion and a release end leases; pod-b then holds none.
    engine
        .complete(vec![Completion {
            token: b[0].token,
            outcome: Outcome::Success { value: json!(1) },
        }])
        .unwrap();
    engine.release(vec![b[1].token]).unwrap();
    let held = engine.running_by_worker("team-a", "gpu");
    assert_eq!(held.get("pod-a"), Some(&3));
    assert_eq!(held.get("pod-b"), None, "{held:?}");
}

#[test]
fn a_lease_knows_its_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let mut all = sleepers("team-a", 1);
    all.extend(sleepers("team-b", 1));
    engine.submit(all).unwrap();
    let leases = engine.lease("gpu", None, "w", 2, Duration::ZERO).unwrap();
    assert_eq!(leases.len(), 2);
    let mut namespaces: Vec<String> = leases
        .iter()
        .map(|l| engine.lease_namespace(l.token).unwrap())
        .collect();
    namespaces.sort();
    assert_eq!(namespaces, ["team-a", "team-b"]);
    assert_eq!(engine.lease_namespace(12345), None, "an unknown token");
}
