//! Acceptance tests of the test control plane itself (tests/cluster/up.sh):
//! if these fail, every other end-to-end result is meaningless.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kontinuum_e2e::{
    TestNamespace, client, kubectl, kubectl_result, parse_table, pinned, wait_for,
};
use kube::api::{Api, ListParams, PostParams};

fn node_is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
async fn a_node_is_ready() {
    let client = client().await;
    let nodes: Api<Node> = Api::all(client);
    let ready = wait_for("a Ready node", Duration::from_secs(60), || {
        let nodes = nodes.clone();
        async move {
            let list = nodes.list(&ListParams::default()).await.ok()?;
            list.items.into_iter().find(node_is_ready)
        }
    })
    .await;
    // kwok's fake nodes advertise capacity, so the scheduler can place pods.
    let allocatable = ready
        .status
        .as_ref()
        .and_then(|s| s.allocatable.as_ref())
        .expect("a Ready node has allocatable resources");
    assert!(
        allocatable.contains_key("pods"),
        "allocatable: {allocatable:?}"
    );

    // And the real kubectl agrees.
    let (header, rows) = parse_table(&kubectl(&["get", "nodes"]));
    let status = header
        .iter()
        .position(|h| h == "STATUS")
        .expect("STATUS column");
    assert!(
        rows.iter().any(|r| r[status] == "Ready"),
        "kubectl get nodes shows no Ready node: {rows:?}"
    );
}

#[tokio::test]
async fn a_deployment_with_3_replicas_gets_3_running_pods() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "deploy").await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    let deployment: Deployment = serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "three"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "three"}},
            "template": {
                "metadata": {"labels": {"app": "three"}},
                // kwok never pulls or runs the image: any name will do.
                "spec": {"containers": [{"name": "main", "image": "example.invalid/pause:1"}]}
            }
        }
    }))
    .unwrap();
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());
    let running = wait_for("3 Running pods", Duration::from_secs(120), || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=three"))
                .await
                .ok()?;
            let running: Vec<Pod> = list
                .items
                .into_iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .collect();
            (running.len() == 3).then_some(running)
        }
    })
    .await;
    for pod in &running {
        let node = pod.spec.as_ref().and_then(|s| s.node_name.as_deref());
        assert!(
            node.is_some(),
            "a Running pod was scheduled to a node: {pod:?}"
        );
    }

    let available = wait_for(
        "the Deployment to report 3 available replicas",
        Duration::from_secs(60),
        || {
            let deployments = deployments.clone();
            async move {
                let d = deployments.get("three").await.ok()?;
                let n = d.status?.available_replicas?;
                (n == 3).then_some(n)
            }
        },
    )
    .await;
    assert_eq!(available, 3);
}

#[tokio::test]
async fn rbac_denies_a_service_account_what_it_was_not_granted() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "rbac").await;
    let n = ns.name();
    kubectl(&["create", "serviceaccount", "nobody", "-n", n]);
    let who = format!("system:serviceaccount:{n}:nobody");

    let can_i = |verb: &str, resource: &str| {
        let r = kubectl_result(
            &["auth", "can-i", verb, resource, "-n", n, "--as", &who],
            None,
        );
        r.stdout.trim().to_owned()
    };
    // Nothing is granted to a fresh ServiceAccount: RBAC says no.
    assert_eq!(can_i("list", "secrets"), "no");
    assert_eq!(can_i("create", "deployments"), "no");
    assert_eq!(can_i("get", "pods"), "no");

    // A Role grants exactly one thing, which proves the "no" above comes from
    // RBAC evaluating rules, not from a broken authorizer.
    kubectl(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get",
        "--resource=pods",
        "-n",
        n,
    ]);
    kubectl(&[
        "create",
        "rolebinding",
        "nobody-reads-pods",
        "--role=pod-reader",
        &format!("--serviceaccount={n}:nobody"),
        "-n",
        n,
    ]);
    assert_eq!(can_i("get", "pods"), "yes");
    assert_eq!(can_i("delete", "pods"), "no");
    assert_eq!(can_i("list", "secrets"), "no");
}

#[tokio::test]
async fn the_pinned_versions_run_and_kubectl_and_helm_match() {
    let k8s = pinned("KUBERNETES_VERSION");
    // The API server reports the version stamped by build.sh's ldflags.
    let info = client().await.apiserver_version().await.expect("/version");
    assert_eq!(info.git_version, k8s, "kube-apiserver version");
    let client_version = kubectl(&["version", "--client", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&client_version).expect("kubectl version json");
    assert_eq!(
        v["clientVersion"]["gitVersion"],
        k8s.as_str(),
        "kubectl on PATH"
    );

    let helm = std::process::Command::new("helm")
        .args(["version", "--short"])
        .output()
        .expect("helm is on PATH (up.sh puts it there)");
    let helm = String::from_utf8_lossy(&helm.stdout);
    assert!(
        helm.starts_with(&pinned("HELM_VERSION")),
        "helm on PATH is {helm}"
    );
}
