//! The real node (`KONTINUUM_REAL_NODE=1 tests/cluster/up.sh`): real
//! containers from a local image, pod networking, Services through
//! kube-proxy, cluster DNS, volumes from the default StorageClass, in-cluster
//! API access; and the taint that keeps every other pod off it.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kontinuum_e2e::{
    REAL_NODE_LABEL, TestNamespace, client, pinned, real_node, real_node_placement, wait_for,
};
use kube::Client;
use kube::api::{Api, ListParams, PostParams};

/// The real node's pods get addresses from this /24 (tests/cluster/node.sh).
const POD_NET: (Ipv4Addr, u32) = (Ipv4Addr::new(10, 245, 0, 0), 24);

fn in_pod_net(ip: &str) -> bool {
    let Ok(ip) = ip.parse::<Ipv4Addr>() else {
        return false;
    };
    let mask = u32::MAX << (32 - POD_NET.1);
    u32::from(ip) & mask == u32::from(POD_NET.0)
}

async fn create<K>(api: &Api<K>, value: serde_json::Value) -> K
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let obj: K = serde_json::from_value(value).expect("manifest");
    api.create(&PostParams::default(), &obj)
        .await
        .unwrap_or_else(|e| panic!("create {obj:?}: {e}"))
}

/// A ready pod of the test image serving HTTP on :8080 on the real node,
/// with a volume from a claim of the default class at /data, and a ClusterIP
/// Service `web` (port 80) in front of it (the pod is `server`). Returns (pod IP, Service IP).
async fn serving_pod(client: &Client, ns: &str) -> (String, String) {
    let node = real_node(client).await;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    create(
        &claims,
        serde_json::json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}
        }),
    )
    .await;
    let mut spec = serde_json::json!({
        "terminationGracePeriodSeconds": 2,
        "containers": [{
            "name": "web",
            "image": pinned("TEST_IMAGE"),
            // Never: the image was imported into the node's containerd;
            // there is no registry to pull from.
            "imagePullPolicy": "Never",
            "args": ["serve", ":8080", "/data"],
            "ports": [{"containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            "volumeMounts": [{"name": "data", "mountPath": "/data"}]
        }],
        "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    });
    let placement = real_node_placement();
    for (k, v) in placement.as_object().expect("object") {
        spec[k] = v.clone();
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    create(
        &pods,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            // Not "web": a pod's /etc/hosts maps its own name to its IP,
            // which would answer the lookups of the Service name below.
            "metadata": {"name": "server", "labels": {"app": "web"}},
            "spec": spec
        }),
    )
    .await;
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let svc = create(
        &services,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
        }),
    )
    .await;
    let cluster_ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a ClusterIP Service has an IP");

    let pod = wait_for("pod server Ready", Duration::from_secs(90), || {
        let pods = pods.clone();
        async move {
            let p = pods.get("server").await.ok()?;
            let ready = p
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(p)
        }
    })
    .await;
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(node.as_str()),
        "the pod runs on the real node"
    );
    let pod_ip = pod
        .status
        .and_then(|s| s.pod_ip)
        .expect("a Ready pod has an IP");
    assert!(
        in_pod_net(&pod_ip),
        "pod IP {pod_ip} is from the real node's pod network"
    );
    (pod_ip, cluster_ip)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()
        .expect("http client")
}

async fn get(url: &str) -> Result<(u16, String), String> {
    let resp = http().get(url).send().await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// GETs `url` until it answers 200 (a fresh Service takes kube-proxy a
/// moment), then returns the body.
async fn get_ok(what: &str, url: &str) -> String {
    wait_for(what, Duration::from_secs(30), || async move {
        match get(url).await {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    })
    .await
}

#[tokio::test]
async fn a_pod_on_the_real_node_serves_http_at_its_ip_and_through_its_service() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "realhttp").await;
    let (pod_ip, cluster_ip) = serving_pod(&client, ns.name()).await;

    let direct = get_ok("HTTP from the pod IP", &format!("http://{pod_ip}:8080/")).await;
    assert_eq!(
        direct.trim(),
        "testimage server",
        "the container answers itself"
    );
    let via_service = get_ok(
        "HTTP through the ClusterIP Service",
        &format!("http://{cluster_ip}/"),
    )
    .await;
    assert_eq!(via_service.trim(), "testimage server");
}

#[tokio::test]
async fn a_pod_on_the_real_node_resolves_services_through_the_cluster_dns() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "realdns").await;
    let n = ns.name();
    let (pod_ip, cluster_ip) = serving_pod(&client, n).await;

    for name in [
        format!("web.{n}.svc.cluster.local"),
        // The search path kubelet writes into the pod's resolv.conf.
        "web".to_owned(),
        format!("web.{n}"),
    ] {
        let answer = get_ok(
            &format!("the pod to resolve {name}"),
            &format!("http://{pod_ip}:8080/resolve/{name}"),
        )
        .await;
        assert_eq!(
            answer.trim(),
            cluster_ip,
            "{name} resolves to the Service IP"
        );
    }
    // A name that does not exist fails, so the answers above are real.
    let (status, body) = get(&format!(
        "http://{pod_ip}:8080/resolve/nothing-here.{n}.svc.cluster.local"
    ))
    .await
    .expect("the pod answers");
    assert_eq!(status, 502, "an unknown Service does not resolve: {body}");
}

#[tokio::test]
async fn a_pod_on_the_real_node_writes_to_a_volume_of_the_default_class() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "realpvc").await;
    let (pod_ip, _) = serving_pod(&client, ns.name()).await;

    let content = format!("written in {} by the pod", ns.name());
    let resp = http()
        .put(format!("http://{pod_ip}:8080/files/hello.txt"))
        .body(content.clone())
        .send()
        .await
        .expect("PUT to the pod");
    assert_eq!(resp.status().as_u16(), 201, "the pod wrote the file");

    // The file is on the PV's directory on this host, where the
    // provisioner made it for the claim.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns.name());
    let claim = claims.get("data").await.expect("claim");
    let pv_name = claim
        .spec
        .and_then(|s| s.volume_name)
        .expect("the claim is bound");
    let pv = Api::<PersistentVolume>::all(client.clone())
        .get(&pv_name)
        .await
        .expect("pv");
    let dir = pv
        .spec
        .and_then(|s| s.host_path)
        .map(|h| h.path)
        .expect("a hostPath PV");
    let on_host = std::fs::read_to_string(Path::new(&dir).join("hello.txt"))
        .unwrap_or_else(|e| panic!("read {dir}/hello.txt on the host: {e}"));
    assert_eq!(on_host, content);
}

#[tokio::test]
async fn a_pod_on_the_real_node_reaches_the_api_server_with_its_service_account() {
    let client = client().await;
    let ns = TestNamespace::create(&client, "realapi").await;
    let (pod_ip, _) = serving_pod(&client, ns.name()).await;

    // The pod calls https://kubernetes.default.svc/api with its projected
    // token, verifying the server with the ca.crt it was given.
    let body = get_ok(
        "the pod's call to the API server",
        &format!("http://{pod_ip}:8080/apiserver"),
    )
    .await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("json from the pod");
    assert_eq!(v["status"], 200, "API server answer: {v}");
    assert!(
        v["body"].as_str().unwrap_or("").contains("APIVersions"),
        "{v}"
    );
}

#[tokio::test]
async fn pods_without_the_toleration_never_land_on_the_real_node() {
    let client = client().await;
    let node = real_node(&client).await;
    let ns = TestNamespace::create(&client, "taint").await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns.name());

    // Selecting the node without tolerating its taint: never scheduled.
    create(
        &pods,
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "stray"},
            "spec": {
                "nodeSelector": {REAL_NODE_LABEL: "true"},
                "containers": [{"name": "c", "image": pinned("TEST_IMAGE"), "imagePullPolicy": "Never"}]
            }
        }),
    )
    .await;
    let message = wait_for(
        "the scheduler to refuse pod stray",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            async move {
                let p = pods.get("stray").await.ok()?;
                let c = p
                    .status?
                    .conditions?
                    .into_iter()
                    .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
                (c.reason.as_deref() == Some("Unschedulable"))
                    .then_some(c.message.unwrap_or_default())
            }
        },
    )
    .await;
    // The selector leaves only the real node; the scheduler names no taint
    // key, only that one node had a taint the pod does not tolerate.
    assert!(
        message.contains("1 node(s) had untolerated taint"),
        "refused for the taint: {message}"
    );

    // Ordinary pods (no selector, no toleration) all go to kwok's nodes.
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns.name());
    create(
        &deployments,
        serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "plain"},
            "spec": {
                "replicas": 6,
                "selector": {"matchLabels": {"app": "plain"}},
                "template": {
                    "metadata": {"labels": {"app": "plain"}},
                    "spec": {"containers": [{"name": "c", "image": "example.invalid/none:1"}]}
                }
            }
        }),
    )
    .await;
    let placed = wait_for("6 scheduled pods", Duration::from_secs(60), || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=plain"))
                .await
                .ok()?;
            let nodes: Vec<String> = list
                .items
                .iter()
                .filter_map(|p| p.spec.as_ref()?.node_name.clone())
                .collect();
            (nodes.len() == 6).then_some(nodes)
        }
    })
    .await;
    assert!(
        placed
            .iter()
            .all(|n| n != &node && n.starts_with("kwok-node-")),
        "ordinary pods stay on kwok nodes: {placed:?}"
    );
    // And stray is still pending.
    let stray = pods.get("stray").await.expect("stray");
    assert_eq!(
        stray.spec.and_then(|s| s.node_name),
        None,
        "stray was never bound"
    );
}
