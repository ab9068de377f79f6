//! What one reconcile of a Task or HierarchicalFuture does, decided from what
//! was read. Pure; the steps are carried out in order by the reconciler
//! (`reconcile::reconcile_inner`).
//!
//! A resource the engine does not hold is submitted only if its own status
//! shows no run that could have had effects: a final status is never
//! submitted again, and a status written from another store (its run was
//! lost with that store) ends as `StoreReplaced` unless the user asks for
//! a rerun on this store ([`Recorded::rerun_asked`]).

use std::time::Duration;

/// What the engine holds under the resource's id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// The uid of the resource it was submitted for.
    pub uid: Option<String>,
    pub is_final: bool,
    /// When it became final (ms since the epoch), if it is.
    pub finished_ms: Option<u64>,
}

/// What the resource's own status (and annotations) record of its past.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The status is final (Succeeded, Failed, Cancelled, Merged).
    pub is_final: bool,
    /// When it became final (`finishedAt`), if it says.
    pub finished_ms: Option<u64>,
    /// `status.storeId`: the store whose run the status shows.
    pub store: Option<String>,
    /// The `kontinuum.dev/rerun` annotation names this operator's store.
    pub rerun_asked: bool,
}

/// Whether a resource the engine does not hold may be submitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unheld {
    /// Never ran anywhere we know of (or the user asked for a rerun).
    Submit,
    /// Its status is final: never run again; it finished at this time.
    Finished(Option<u64>),
    /// Its run was lost with the store its status names.
    Orphaned { previous: String },
}

/// The decision for a resource the engine does not hold, in the store
/// `store_id`.
pub fn unheld(recorded: &Recorded, store_id: &str) -> Unheld {
    let from_here = recorded.store.as_deref().is_none_or(|s| s == store_id);
    if recorded.rerun_asked && !from_here {
        return Unheld::Submit;
    }
    if recorded.is_final {
        return Unheld::Finished(recorded.finished_ms);
    }
    match &recorded.store {
        Some(previous) if !from_here => Unheld::Orphaned {
            previous: previous.clone(),
        },
        _ => Unheld::Submit,
    }
}

/// What was read about the resource.
#[derive(Clone, Debug)]
pub struct Observed {
    pub uid: String,
    pub deleting: bool,
    pub has_finalizer: bool,
    /// `spec.parentRef.name`, and whether the ownerReference to it is set.
    pub parent: Option<String>,
    pub owned_by_parent: bool,
    pub held: Option<Held>,
    /// What its status records (read when the engine does not hold it).
    pub recorded: Recorded,
    /// This operator's store.
    pub store_id: String,
    pub ttl: Option<Duration>,
    pub now_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Add the finalizer (and the parent's ownerReference when known).
    Claim,
    /// Set the ownerReference to the parent future.
    OwnByParent,
    /// Hand the resource to the engine.
    Submit,
    /// Its run was lost with the store its status names (`previous`): end
    /// it `StoreReplaced` instead of running it again unasked.
    Orphan { previous: String },
    /// The engine holds an object of the same name for another uid (the
    /// resource was deleted without the operator and created again):
    /// cancel and remove that one first.
    DropStale,
    /// Cancel the whole tree (deletion of an unfinished resource).
    Cancel,
    /// Remove the engine's records of a final object.
    Remove,
    /// Let the resource go.
    Release,
    /// ttlAfterFinished has passed: delete the resource.
    Delete,
    /// Look again after this long (a ttl that has not passed yet).
    RequeueAfter(Duration),
}

pub fn plan(o: &Observed) -> Vec<Step> {
    let mine = |h: &Held| h.uid.as_deref().is_none_or(|u| u == o.uid);
    if o.deleting {
        let mut steps = Vec::new();
        if let Some(held) = &o.held {
            if mine(held) && !held.is_final {
                steps.push(Step::Cancel);
            }
            steps.push(Step::Remove);
        }
        if o.has_finalizer {
            steps.push(Step::Release);
        }
        return steps;
    }
    let mut steps = Vec::new();
    if !o.has_finalizer {
        steps.push(Step::Claim);
    } else if o.parent.is_some() && !o.owned_by_parent {
        steps.push(Step::OwnByParent);
    }
    let finished_ms = match &o.held {
        None => match unheld(&o.recorded, &o.store_id) {
            Unheld::Submit => {
                steps.push(Step::Submit);
                None
            }
            // A rejection (invalid spec, finished parent) counts too: its
            // ttl runs from the rejection.
            Unheld::Finished(at) => Some(at.unwrap_or(0)),
            Unheld::Orphaned { previous } => {
                steps.push(Step::Orphan { previous });
                None
            }
        },
        Some(h) if !mine(h) => {
            steps.push(Step::DropStale);
            steps.push(Step::Submit);
            None
        }
        Some(h) => h.finished_ms.filter(|_| h.is_final),
    };
    if let (Some(ttl), Some(at)) = (o.ttl, finished_ms) {
        let expires = at.saturating_add(ttl.as_millis() as u64);
        if o.now_ms >= expires {
            steps.push(Step::Delete);
        } else {
            steps.push(Step::RequeueAfter(Duration::from_millis(
                expires - o.now_ms,
            )));
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed() -> Observed {
        Observed {
            uid: "u1".into(),
            deleting: false,
            has_finalizer: true,
            parent: None,
            owned_by_parent: false,
            held: None,
            recorded: Recorded::default(),
            store_id: "st-here".into(),
            ttl: None,
            now_ms: 10_000,
        }
    }

    fn held(uid: &str, is_final: bool, finished_ms: Option<u64>) -> Option<Held> {
        Some(Held {
            uid: Some(uid.into()),
            is_final,
            finished_ms,
        })
    }

    #[test]
    fn a_new_resource_is_claimed_and_submitted() {
        let o = Observed {
            has_finalizer: false,
            ..observed()
        };
        assert_eq!(plan(&o), [Step::Claim, Step::Submit]);
    }

    #[test]
    fn a_held_resource_needs_nothing() {
        let o = Observed {
            held: held("u1", false, None),
            ..observed()
        };
        assert!(plan(&o).is_empty());
    }

    #[test]
    fn a_stale_object_of_another_uid_is_dropped_before_submitting() {
        let o = Observed {
            held: held("old", true, Some(1)),
            ..observed()
        };
        assert_eq!(plan(&o), [Step::DropStale, Step::Submit]);
    }

    #[test]
    fn deleting_an_unfinished_resource_cancels_removes_and_releases() {
        let o = Observed {
            deleting: true,
            held: held("u1", false, None),
            ..observed()
        };
        assert_eq!(plan(&o), [Step::Cancel, Step::Remove, Step::Release]);
        let done = Observed {
            deleting: true,
            held: held("u1", true, Some(5)),
            ..observed()
        };
        assert_eq!(plan(&done), [Step::Remove, Step::Release]);
        let gone = Observed {
            deleting: true,
            has_finalizer: false,
            ..observed()
        };
        assert!(plan(&gone).is_empty());
    }

    #[test]
    fn deleting_never_cancels_another_uids_object_but_removes_it() {
        let o = Observed {
            deleting: true,
            held: held("other", false, None),
            ..observed()
        };
        assert_eq!(plan(&o), [Step::Remove, Step::Release]);
    }

    #[test]
    fn ttl_deletes_when_passed_and_requeues_before() {
        let ttl = Some(Duration::from_secs(5));
        let early = Observed {
            held: held("u1", true, Some(8_000)),
            ttl,
            ..observed()
        };
        assert_eq!(plan(&early), [Step::RequeueAfter(Duration::from_secs(3))]);
        let late = Observed {
            now_ms: 13_000,
            ..early.clone()
        };
        assert_eq!(plan(&late), [Step::Delete]);
        let running = Observed {
            held: held("u1", false, None),
            ttl,
            ..observed()
        };
        assert!(plan(&running).is_empty());
    }

    #[test]
    fn a_rejected_resource_is_not_resubmitted_and_its_ttl_counts_from_the_rejection() {
        let o = Observed {
            recorded: Recorded {
                is_final: true,
                finished_ms: Some(9_000),
                store: Some("st-here".into()),
                rerun_asked: false,
            },
            ttl: Some(Duration::from_secs(1)),
            ..observed()
        };
        assert_eq!(plan(&o), [Step::Delete]);
    }

    fn recorded(is_final: bool, store: Option<&str>, rerun_asked: bool) -> Recorded {
        Recorded {
            is_final,
            finished_ms: is_final.then_some(5_000),
            store: store.map(str::to_string),
            rerun_asked,
        }
    }

    #[test]
    fn a_finished_status_is_never_submitted_again_whatever_store_wrote_it() {
        for store in [None, Some("st-here"), Some("st-gone")] {
            let o = Observed {
                recorded: recorded(true, store, false),
                ..observed()
            };
            assert!(plan(&o).is_empty(), "store {store:?}: {:?}", plan(&o));
        }
    }

    #[test]
    fn an_unfinished_run_of_another_store_is_orphaned_not_run_again() {
        let o = Observed {
            recorded: recorded(false, Some("st-gone"), false),
            ..observed()
        };
        assert_eq!(
            plan(&o),
            [Step::Orphan {
                previous: "st-gone".into()
            }]
        );
        // Its ttl does not run: it has not finished.
        let with_ttl = Observed {
            ttl: Some(Duration::from_secs(1)),
            ..o
        };
        assert_eq!(plan(&with_ttl).len(), 1);
    }

    #[test]
    fn a_rerun_on_this_store_is_submitted_once_asked_for() {
        for is_final in [false, true] {
            let o = Observed {
                recorded: recorded(is_final, Some("st-gone"), true),
                ..observed()
            };
            assert_eq!(plan(&o), [Step::Submit], "final: {is_final}");
        }
        // The annotation does not re-run what this store itself finished.
        let here = Observed {
            recorded: recorded(true, Some("st-here"), true),
            ..observed()
        };
        assert!(plan(&here).is_empty());
    }

    #[test]
    fn a_status_of_this_store_or_none_is_submitted_when_not_held() {
        for store in [None, Some("st-here")] {
            let o = Observed {
                recorded: recorded(false, store, false),
                ..observed()
            };
            assert_eq!(plan(&o), [Step::Submit], "store {store:?}");
        }
    }

    #[test]
    fn a_child_gets_its_parents_owner_reference() {
        let o = Observed {
            parent: Some("p".into()),
            held: held("u1", false, None),
            ..observed()
        };
        assert_eq!(plan(&o), [Step::OwnByParent]);
        let claimed = Observed {
            owned_by_parent: true,
            ..o
        };
        assert!(plan(&claimed).is_empty());
    }
}
