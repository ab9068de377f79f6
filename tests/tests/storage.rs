//! Storage as real clusters have it: a default StorageClass whose
//! provisioner binds claims (tests/cluster/provisioner), on any cluster
//! tests/cluster/up.sh starts, kwok nodes only or with the real node.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kontinuum_e2e::{TestNamespace, client, wait_for};
use kube::api::{Api, DeleteParams, ListParams, PostParams};

#[tokio::test]
async fn a_claim_without_a_class_is_bound_by_the_default_class_and_reclaimed_on_delete() {
    let client = client().await;
    let classes: Api<StorageClass> = Api::all(client.clone());
    let defaults: Vec<String> = classes
        .list(&ListParams::default())
        .await
        .expect("list StorageClasses")
        .items
        .into_iter()
        .filter(|c| {
            c.metadata.annotations.as_ref().is_some_and(|a| {
                a.get("storageclass.kubernetes.io/is-default-class")
                    .is_some_and(|v| v == "true")
            })
        })
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(defaults, ["standard"], "exactly one default StorageClass");

    let ns = TestNamespace::create(&client, "storage").await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns.name());
    let claim: PersistentVolumeClaim = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "store"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    }))
    .expect("claim");
    let created = claims
        .create(&PostParams::default(), &claim)
        .await
        .expect("create claim");
    // The DefaultStorageClass admission plugin fills in the class.
    assert_eq!(
        created
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref()),
        Some("standard")
    );

    let bound = wait_for("claim store Bound", Duration::from_secs(60), || {
        let claims = claims.clone();
        async move {
            let c = claims.get("store").await.ok()?;
            (c.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(c)
        }
    })
    .await;
    let pv_name = bound
        .spec
        .and_then(|s| s.volume_name)
        .expect("a bound claim names its volume");
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let pv = volumes.get(&pv_name).await.expect("the bound PV");
    let spec = pv.spec.expect("pv spec");
    assert_eq!(spec.storage_class_name.as_deref(), Some("standard"));
    assert_eq!(
        spec.capacity
            .as_ref()
            .and_then(|c| c.get("storage"))
            .map(|q| q.0.as_str()),
        Some("1Gi")
    );
    let dir = spec.host_path.map(|h| h.path).expect("a hostPath PV");
    assert!(Path::new(&dir).is_dir(), "the provisioner made {dir}");

    // Reclaim policy Delete: deleting the claim removes the PV and its data.
    claims
        .delete("store", &DeleteParams::default())
        .await
        .expect("delete claim");
    wait_for("the PV to be deleted", Duration::from_secs(60), || {
        let volumes = volumes.clone();
        let pv_name = pv_name.clone();
        async move {
            volumes
                .get_opt(&pv_name)
                .await
                .ok()?
                .is_none()
                .then_some(())
        }
    })
    .await;
    assert!(!Path::new(&dir).exists(), "{dir} was removed with its PV");
}
