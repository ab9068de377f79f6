//! Data where the workers are: a `lines` map over a file mounted only in
//! the worker pods (a ConfigMap at /corpus), with the operator, and so the
//! engine, in its own pod on the real node, which has no such file. The
//! engine never opens it: a worker of the pool plans the map (size, mean
//! line length) and maps it; a path that is not there fails the future with
//! the worker's message and the path. Then the same text as objects in the
//! test cluster's S3-compatible store, read by the pool's workers with
//! credentials from a Secret, from `kubectl apply`.

use std::time::Duration;

use kontinuum_e2e::{
    TestNamespace, apply, client, helm, import_image, kubectl, real_node, real_node_placement,
    repo_root, s3, wait_for,
};
use serde_json::{Value, json};

const RELEASE: &str = "kt-lines";

async fn final_status(ns: &str, name: &str) -> Value {
    wait_for(
        &format!("future/{name} to finish"),
        Duration::from_secs(300),
        || async {
            let out = kubectl(&["get", "-n", ns, "future", name, "-o", "json"]);
            let s = serde_json::from_str::<Value>(&out).ok()?["status"].clone();
            matches!(s["phase"].as_str(), Some("Succeeded" | "Failed")).then_some(s)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_mounted_only_in_the_workers_pods_or_in_object_storage_is_mapped_by_them() {
    let client = client().await;
    real_node(&client).await;
    let system = TestNamespace::create(&client, "lines-system").await;
    let system = system.name().to_owned();
    let tag = import_image();
    let placement = real_node_placement();
    let _release = helm::install_on_real_node(RELEASE, &system, &tag, &[system.as_str()]);

    // The text, mounted into the pool's pods only.
    let rhyme = repo_root().join("examples/data/rhyme.txt");
    let text = std::fs::read_to_string(&rhyme).unwrap();
    apply(
        &system,
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "corpus"},
                "data": {"rhyme.txt": text}}),
    );
    let mut pod_spec = placement.clone();
    pod_spec["containers"] = json!([{
        "name": "worker",
        "volumeMounts": [{"name": "corpus", "mountPath": "/corpus"}],
        "envFrom": [{"secretRef": {"name": "store-keys"}}],
    }]);
    pod_spec["volumes"] = json!([{"name": "corpus", "configMap": {"name": "corpus"}}]);
    // The store's keys, for the pool's environment only.
    let keys: serde_json::Map<String, Value> = s3::credentials()
        .into_iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    apply(
        &system,
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "store-keys"},
                "stringData": keys}),
    );
    apply(
        &system,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
                "metadata": {"name": "readers"},
                "spec": {"scaling": {"minReplicas": 0, "maxReplicas": 1},
                         "worker": {"functions": {"deny": ["std.exec"]}},
                         "template": {"spec": pod_spec}}}),
    );
    let operator = kubectl(&[
        "get",
        "deployments",
        "-n",
        &system,
        "-l",
        &format!("app.kubernetes.io/instance={RELEASE}"),
        "-o",
        "json",
    ]);
    assert!(
        !operator.contains("/corpus"),
        "the operator's pod must not have the data: {operator}"
    );

    let future = |name: &str, path: &str| {
        json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
               "metadata": {"name": name},
               "spec": {"pool": "readers",
                        "map": {"source": {"lines": {"path": path}},
                                "function": {"function": "std.wordcount"},
                                "shardSize": 16, "reduce": "merge"}}})
    };
    apply(&system, &future("words", "/corpus/rhyme.txt"));
    apply(&system, &future("no-words", "/corpus/missing.txt"));

    let words = final_status(&system, "words").await;
    assert_eq!(words["phase"], "Succeeded", "{words}");
    // The same text through `kontinuum run` on this machine's disk.
    let (out, local) =
        kontinuum_e2e::procs::kontinuum_run_json(&repo_root().join("examples/wordcount.yaml"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(words["result"], local["status"]["result"]);
    assert_eq!(words["result"]["the"], 256);
    let bytes = text.len() as u64;
    assert_eq!(
        (
            words["progress"]["done"].as_u64(),
            words["progress"]["total"].as_u64()
        ),
        (Some(bytes), Some(bytes)),
        "progress counts the file's bytes: {words}"
    );

    // Twenty objects (one over 64 MiB, read in byte ranges), counted here
    // by std.wordcount's rule (lowercase; the vocabulary has no punctuation).
    let store = s3::bucket("real-node-corpus");
    let mut expected: std::collections::BTreeMap<String, u64> = Default::default();
    let words = s3::put_corpus(&store, "texts/", |data| {
        for w in String::from_utf8_lossy(data).split_whitespace() {
            *expected.entry(w.to_lowercase()).or_default() += 1;
        }
    })
    .await;
    apply(
        &system,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
                "metadata": {"name": "object-words"},
                "spec": {"pool": "readers",
                         "map": {"source": {"objects": {"url": "s3://real-node-corpus/texts/",
                                                        "endpoint": s3::endpoint()}},
                                 "function": {"function": "std.wordcount"},
                                 "shardSize": 20000, "reduce": "merge"}}}),
    );
    let objects = final_status(&system, "object-words").await;
    assert_eq!(objects["phase"], "Succeeded", "{objects}");
    assert_eq!(objects["result"], json!(expected));
    assert_eq!(expected.values().sum::<u64>(), words);

    // The pool does not serve std.exec: a call of it fails saying so.
    apply(
        &system,
        &json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": "shell"},
                "spec": {"pool": "readers", "call": {"function": "std.exec",
                                                      "args": {"command": ["id"]}}}}),
    );
    let shell = wait_for("task/shell to fail", Duration::from_secs(120), || async {
        let out = kubectl(&["get", "-n", &system, "task", "shell", "-o", "json"]);
        let s = serde_json::from_str::<Value>(&out).ok()?["status"].clone();
        (s["phase"] == "Failed").then_some(s)
    })
    .await;
    assert_eq!(
        shell["error"]["message"],
        "function 'std.exec' is denied in this pool (deny 'std.exec' in the WorkerPool's spec.worker.functions, or --deny)",
        "{shell}"
    );

    let missing = final_status(&system, "no-words").await;
    assert_eq!(missing["phase"], "Failed", "{missing}");
    let failed = missing["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Failed"))
        .map(|c| c["message"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    assert!(
        failed.starts_with("spec.map.source.lines.path: lines source '/corpus/missing.txt': ")
            && failed.contains("No such file"),
        "{missing}"
    );
}
