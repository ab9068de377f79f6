//! The `kontinuum.dev/cancel` finalizer's release.
//!
//! The finalizer reaches a resource one of two ways: the chart's
//! MutatingAdmissionPolicy puts it there inside the API server's create
//! (no write of ours), or the operator applies it on first sight. Only the
//! second is recorded under the operator's field manager, so releasing it
//! by applying metadata without it would leave the first kind in place.
//! The release is a JSON patch instead: test that the object is the one
//! that was read (its uid: a resource deleted and created again under the
//! same name keeps its finalizer) and that the entry is ours, then remove
//! it. Other finalizers stay; if the list moved in between (or the list
//! read was a stale cache's), the API server refuses the patch and the
//! reconciler reads the object afresh and tries once more.

use super::FINALIZER;
use json_patch::jsonptr::PointerBuf;
use json_patch::{Patch, PatchOperation, RemoveOperation, TestOperation};
use serde_json::Value;

/// The JSON patch that removes [`FINALIZER`] from the object `uid`, or
/// None if it is not there.
pub fn release_patch(uid: &str, finalizers: &[String]) -> Option<Patch> {
    let i = finalizers.iter().position(|f| f == FINALIZER)?;
    let entry =
        PointerBuf::from_tokens(["metadata".to_string(), "finalizers".into(), i.to_string()]);
    Some(Patch(vec![
        PatchOperation::Test(TestOperation {
            path: PointerBuf::from_tokens(["metadata", "uid"]),
            value: Value::from(uid),
        }),
        PatchOperation::Test(TestOperation {
            path: entry.clone(),
            value: Value::from(FINALIZER),
        }),
        PatchOperation::Remove(RemoveOperation { path: entry }),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn removes_only_its_own_entry_after_testing_it() {
        let patch = release_patch("u1", &names(&["example.com/keep", FINALIZER])).unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!([
                {"op": "test", "path": "/metadata/uid", "value": "u1"},
                {"op": "test", "path": "/metadata/finalizers/1", "value": FINALIZER},
                {"op": "remove", "path": "/metadata/finalizers/1"},
            ])
        );
        // Applied, it leaves the other one.
        let mut object =
            json!({"metadata": {"uid": "u1", "finalizers": ["example.com/keep", FINALIZER]}});
        json_patch::patch(&mut object, &patch).unwrap();
        assert_eq!(
            object["metadata"]["finalizers"],
            json!(["example.com/keep"])
        );
    }

    #[test]
    fn a_list_that_moved_fails_the_test_and_changes_nothing() {
        let patch = release_patch("u1", &names(&[FINALIZER, "example.com/keep"])).unwrap();
        // Someone removed the first entry in the meantime.
        let mut object = json!({"metadata": {"uid": "u1", "finalizers": ["example.com/keep"]}});
        let before = object.clone();
        assert!(json_patch::patch(&mut object, &patch).is_err());
        assert_eq!(object, before);
    }

    #[test]
    fn a_resource_created_again_under_the_name_keeps_its_finalizer() {
        let patch = release_patch("old", &names(&[FINALIZER])).unwrap();
        let mut object = json!({"metadata": {"uid": "new", "finalizers": [FINALIZER]}});
        let before = object.clone();
        assert!(json_patch::patch(&mut object, &patch).is_err());
        assert_eq!(object, before);
    }

    #[test]
    fn nothing_to_release_without_it() {
        assert_eq!(release_patch("u1", &names(&["example.com/keep"])), None);
        assert_eq!(release_patch("u1", &[]), None);
    }
}
