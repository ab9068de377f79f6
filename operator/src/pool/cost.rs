//! Task-aware scale-down: before a pool's Deployment gets fewer replicas,
//! each worker pod is annotated with `controller.kubernetes.io/pod-deletion-cost`
//! = the tasks it runs, so the ReplicaSet controller deletes idle pods
//! first. Pure: pods and lease counts in, the annotations to change out.

use std::collections::BTreeMap;

pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A worker pod as the reconcile read it.
#[derive(Clone, Debug)]
pub struct PodCost {
    pub name: String,
    /// The annotation as it is now, if set.
    pub current: Option<String>,
}

/// The annotation each pod should carry: the leases held by its worker.
/// A worker names itself after its pod (`POD_NAME`), or `POD-PID` when it
/// fell back to the host name. Only pods whose annotation changes are
/// returned, so a steady pool is not patched.
pub fn changes(pods: &[PodCost], running: &BTreeMap<String, u64>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pod in pods {
        let held: u64 = running
            .iter()
            .filter(|(worker, _)| is_worker_of(worker, &pod.name))
            .map(|(_, n)| n)
            .sum();
        // The annotation is an int32; more tasks than that cost the same.
        let cost = held.min(i32::MAX as u64).to_string();
        if pod.current.as_deref() != Some(cost.as_str()) {
            out.push((pod.name.clone(), cost));
        }
    }
    out
}

fn is_worker_of(worker: &str, pod: &str) -> bool {
    worker == pod
        || worker
            .strip_prefix(pod)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, current: Option<&str>) -> PodCost {
        PodCost {
            name: name.into(),
            current: current.map(str::to_string),
        }
    }

    #[test]
    fn busy_pods_cost_their_tasks_idle_ones_nothing() {
        let running = BTreeMap::from([
            ("w-abc".to_string(), 5),
            ("w-def-1".to_string(), 2),
            ("elsewhere".to_string(), 9),
        ]);
        let pods = [pod("w-abc", None), pod("w-def", None), pod("w-ghi", None)];
        assert_eq!(
            changes(&pods, &running),
            [
                ("w-abc".to_string(), "5".to_string()),
                ("w-def".to_string(), "2".to_string()),
                ("w-ghi".to_string(), "0".to_string()),
            ]
        );
    }

    #[test]
    fn unchanged_annotations_are_not_patched_and_names_do_not_bleed() {
        // "w-a" must not count the worker of pod "w-ab", nor "w-a-x".
        let running = BTreeMap::from([
            ("w-ab".to_string(), 3),
            ("w-a-x".to_string(), 4),
            ("w-a".to_string(), 1),
        ]);
        let pods = [pod("w-a", Some("1")), pod("w-ab", Some("0"))];
        assert_eq!(
            changes(&pods, &running),
            [("w-ab".to_string(), "3".to_string())]
        );
    }
}
