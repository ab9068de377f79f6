//! Our CRDs (crds/*.yaml, generated from the api crate) on the real API
//! server: they become Established, kubectl knows their names, explains their
//! fields, prints their columns, and the API server itself rejects invalid
//! manifests with a message naming the field.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kontinuum_api::future::{NodeCounts, Progress};
use kontinuum_api::{
    FutureStatus, HierarchicalFuture, Task, TaskStatus, WorkerPool, WorkerPoolStatus,
};
use kontinuum_e2e::{
    TestNamespace, client, ensure_crds, kubectl, kubectl_result, kubectl_stdin, parse_table,
    repo_root, wait_for, yaml_files,
};
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

fn crd_condition(crd: &CustomResourceDefinition, type_: &str) -> Option<String> {
    crd.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

#[tokio::test]
async fn crds_apply_and_become_established_with_their_names_and_subresources() {
    ensure_crds().await;
    let crds: Api<CustomResourceDefinition> = Api::all(client().await);

    // (name, kind, singular, short name, has scale subresource)
    let expected = [
        (
            "futures.kontinuum.dev",
            "HierarchicalFuture",
            "future",
            "hf",
            false,
        ),
        ("tasks.kontinuum.dev", "Task", "task", "kt", false),
        (
            "workerpools.kontinuum.dev",
            "WorkerPool",
            "workerpool",
            "wp",
            true,
        ),
    ];
    for (name, kind, singular, short, scale) in expected {
        let crd = crds
            .get(name)
            .await
            .unwrap_or_else(|e| panic!("get crd {name}: {e}"));
        assert_eq!(
            crd_condition(&crd, "Established").as_deref(),
            Some("True"),
            "{name} Established"
        );
        assert_eq!(
            crd_condition(&crd, "NamesAccepted").as_deref(),
            Some("True"),
            "{name} NamesAccepted"
        );
        assert_eq!(crd.spec.group, "kontinuum.dev");
        assert_eq!(crd.spec.scope, "Namespaced", "{name} is namespaced");
        let names = &crd.spec.names;
        assert_eq!(names.kind, kind);
        assert_eq!(names.singular.as_deref(), Some(singular));
        assert!(
            names
                .short_names
                .as_ref()
                .is_some_and(|s| s.iter().any(|n| n == short)),
            "{name} has short name {short}: {:?}",
            names.short_names
        );
        let version = crd
            .spec
            .versions
            .iter()
            .find(|v| v.name == "v1alpha1")
            .unwrap_or_else(|| panic!("{name} serves v1alpha1"));
        assert!(version.served && version.storage);
        let sub = version
            .subresources
            .as_ref()
            .unwrap_or_else(|| panic!("{name} subresources"));
        assert!(sub.status.is_some(), "{name} has the status subresource");
        assert_eq!(sub.scale.is_some(), scale, "{name} scale subresource");
    }

    // kubectl resolves every name form.
    let ns = TestNamespace::create(&client().await, "names").await;
    for resource in [
        "futures",
        "future",
        "hf",
        "tasks",
        "task",
        "kt",
        "workerpools",
        "workerpool",
        "wp",
    ] {
        kubectl(&["get", resource, "-n", ns.name()]);
    }
}

/// `kubectl explain PATH` for our fields: the field itself and each of its
/// sub-fields have a real description.
fn assert_explained(path: &str) {
    let out = kubectl(&["explain", path]);
    let mut section = "";
    let mut description = String::new();
    // (field line, its description lines)
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in out.lines() {
        match line.trim_end() {
            "DESCRIPTION:" => section = "description",
            "FIELDS:" => section = "fields",
            "" => {}
            l if !l.starts_with(' ') => section = "",
            l => match section {
                "description" => description.push_str(l.trim()),
                // kubectl prints an enum's values under the field line.
                "fields" if l.trim_start().starts_with("enum:") => {}
                "fields" if l.starts_with("    ") => {
                    if let Some(last) = fields.last_mut() {
                        last.1.push_str(l.trim());
                    }
                }
                "fields" => fields.push((l.trim().to_owned(), String::new())),
                _ => {}
            },
        }
    }
    let real = |d: &str| !d.is_empty() && d != "<empty>" && d != "<no description>";
    assert!(
        real(&description),
        "kubectl explain {path}: no description:\n{out}"
    );
    for (field, desc) in &fields {
        assert!(
            real(desc),
            "kubectl explain {path}: field `{field}` has no description:\n{out}"
        );
    }
}

#[tokio::test]
async fn kubectl_explain_shows_descriptions() {
    ensure_crds().await;
    let out = kubectl(&["explain", "futures.spec.map"]);
    for field in ["source", "function", "shardSize", "fanout", "reduce"] {
        assert!(
            out.contains(field),
            "explain futures.spec.map lists {field}:\n{out}"
        );
    }
    for path in [
        "futures",
        "futures.spec",
        "futures.spec.map",
        "futures.spec.map.source",
        "futures.spec.map.function",
        "futures.spec.failurePolicy",
        "futures.status",
        "futures.status.progress",
        "futures.status.counts",
        "tasks",
        "tasks.spec",
        "tasks.spec.retry",
        "tasks.spec.retry.backoff",
        "tasks.spec.debounce",
        "tasks.spec.exclusive",
        "tasks.status",
        "tasks.status.error",
        "workerpools",
        "workerpools.spec",
        "workerpools.spec.scaling",
        "workerpools.status",
    ] {
        assert_explained(path);
    }
}

/// `kubectl get RESOURCE NAME` as a header and the object's row.
fn table_row(resource: &str, name: &str, ns: &str) -> (Vec<String>, Vec<String>) {
    let (header, rows) = parse_table(&kubectl(&["get", resource, name, "-n", ns]));
    assert_eq!(rows.len(), 1, "one row for {resource}/{name}: {rows:?}");
    (header, rows.into_iter().next().unwrap())
}

fn status_patch<T: serde::Serialize>(status: &T) -> Patch<serde_json::Value> {
    Patch::Merge(json!({ "status": status }))
}

#[tokio::test]
async fn printer_columns_show_status_written_through_the_status_subresource() {
    ensure_crds().await;
    let client = client().await;
    let ns = TestNamespace::create(&client, "columns").await;
    let n = ns.name();
    let pp = PatchParams::default();

    // --- futures: PHASE, PROGRESS, DONE/TOTAL, FAILED, RESULT, REASON, AGE
    kubectl_stdin(
        &["apply", "-n", n, "-f", "-"],
        Some(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {name: squares}\n\
             spec:\n  map:\n    source: {range: {start: 0, end: 100}}\n    function: {function: std.square}\n    reduce: sum\n",
        ),
    );
    let status = FutureStatus {
        phase: Some(kontinuum_api::Phase::Running),
        progress: Some(Progress::new(42, 100)),
        counts: Some(NodeCounts {
            pending: 3,
            running: 2,
            succeeded: 4,
            failed: 1,
            cancelled: 0,
        }),
        nodes: 10,
        depth: 2,
        conditions: vec![kontinuum_api::common::Condition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: "NoWorkerPool".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let futures: Api<HierarchicalFuture> = Api::namespaced(client.clone(), n);
    futures
        .patch_status("squares", &pp, &status_patch(&status))
        .await
        .expect("status subresource of futures accepts the operator's FutureStatus");
    let (header, row) = table_row("futures", "squares", n);
    assert_eq!(
        header,
        [
            "NAME",
            "PHASE",
            "PROGRESS",
            "DONE/TOTAL",
            "FAILED",
            "RESULT",
            "REASON",
            "AGE"
        ]
    );
    assert_eq!(row[0], "squares");
    assert_eq!(row[1], "Running");
    assert!(row[2].starts_with("42"), "PROGRESS is the percent: {row:?}");
    assert_eq!(row[3], "42/100");
    assert_eq!(row[4], "1");
    assert_eq!(
        row[6], "NoWorkerPool",
        "REASON is the Ready condition's: {row:?}"
    );
    assert!(!row[7].is_empty(), "AGE: {row:?}");
    // The short name prints the same table.
    assert_eq!(table_row("hf", "squares", n).1[1], "Running");

    // The typed api types read back both halves: the status written through
    // the subresource, and the spec kubectl applied, untouched by it.
    let f = futures.get("squares").await.unwrap();
    assert_eq!(
        f.status.as_ref().and_then(|s| s.phase),
        Some(kontinuum_api::Phase::Running)
    );
    assert_eq!(
        f.spec
            .map
            .as_ref()
            .and_then(|m| m.source.range.as_ref())
            .map(|r| r.end),
        Some(100)
    );

    // --- tasks: PHASE, FUNCTION, ATTEMPTS, RESULT, REASON, AGE (a final
    // task has no Ready condition: REASON is empty). RESULT is
    // status.resultText, which the operator writes beside the typed status.
    kubectl_stdin(
        &["apply", "-n", n, "-f", "-"],
        Some(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: sum-4-5}\n\
             spec:\n  call: {function: std.sum, args: {a: 4, b: 5}}\n",
        ),
    );
    let mut status = serde_json::to_value(TaskStatus {
        phase: Some(kontinuum_api::Phase::Succeeded),
        attempts: 2,
        result: Some(serde_json::from_str("333333283333335000000").unwrap()),
        ..Default::default()
    })
    .unwrap();
    status["resultText"] = json!("333333283333335000000");
    Api::<Task>::namespaced(client.clone(), n)
        .patch_status("sum-4-5", &pp, &status_patch(&status))
        .await
        .expect("status subresource of tasks accepts the operator's TaskStatus");
    let (header, row) = table_row("tasks", "sum-4-5", n);
    assert_eq!(
        header,
        [
            "NAME", "PHASE", "FUNCTION", "ATTEMPTS", "RESULT", "REASON", "AGE"
        ]
    );
    assert_eq!(
        &row[..5],
        [
            "sum-4-5",
            "Succeeded",
            "std.sum",
            "2",
            "333333283333335000000"
        ]
    );
    assert!(!row[6].is_empty(), "AGE: {row:?}");

    // --- workerpools: DESIRED, READY, QUEUED, RUNNING, AGE
    kubectl_stdin(
        &["apply", "-n", n, "-f", "-"],
        Some(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: WorkerPool\nmetadata: {name: default}\n\
             spec:\n  concurrency: 8\n  scaling: {minReplicas: 0, maxReplicas: 20, targetPerReplica: 16, scaleDownDelay: 60s}\n",
        ),
    );
    let status = WorkerPoolStatus {
        replicas: 3,
        ready_replicas: 2,
        desired_replicas: 4,
        queued: 57,
        running: 16,
        selector: Some("app=kontinuum-worker".into()),
        ..Default::default()
    };
    let pools: Api<WorkerPool> = Api::namespaced(client.clone(), n);
    pools
        .patch_status("default", &pp, &status_patch(&status))
        .await
        .expect("status subresource of workerpools accepts the operator's WorkerPoolStatus");
    let (header, row) = table_row("workerpools", "default", n);
    assert_eq!(
        header,
        ["NAME", "DESIRED", "READY", "QUEUED", "RUNNING", "AGE"]
    );
    assert_eq!(&row[..5], ["default", "4", "2", "57", "16"]);
    assert!(!row[5].is_empty(), "AGE: {row:?}");

    // The scale subresource: `kubectl scale` sets spec.replicas.
    kubectl(&["scale", "workerpool/default", "--replicas=5", "-n", n]);
    let replicas = wait_for("spec.replicas = 5", Duration::from_secs(10), || {
        let pools = pools.clone();
        async move {
            pools
                .get("default")
                .await
                .ok()?
                .spec
                .replicas
                .filter(|r| *r == 5)
        }
    })
    .await;
    assert_eq!(replicas, 5);
}

/// Applies `manifest` with `kubectl apply --dry-run=server` and expects the
/// API server to reject it with a message containing every one of `needles`.
fn assert_rejected(ns: &str, what: &str, manifest: &str, needles: &[&str]) {
    let r = kubectl_result(
        &["apply", "--dry-run=server", "-n", ns, "-f", "-"],
        Some(manifest),
    );
    assert!(
        !r.success,
        "{what}: the API server accepted it:\n{manifest}\n{}",
        r.stdout
    );
    // "... is invalid: <field>: ..." comes from the API server's validation,
    // not from kubectl's client side.
    assert!(
        r.stderr.contains("is invalid"),
        "{what}: not a validation error: {}",
        r.stderr
    );
    for needle in needles {
        assert!(
            r.stderr.contains(needle),
            "{what}: the message does not name `{needle}`:\n{}",
            r.stderr
        );
    }
}

const FUTURE_HEAD: &str =
    "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {name: bad}\nspec:\n";
const TASK_HEAD: &str =
    "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: bad}\nspec:\n";
const MAP: &str =
    "  map:\n    source: {range: {start: 0, end: 10}}\n    function: {function: std.square}\n";

#[tokio::test]
async fn invalid_manifests_are_rejected_by_the_api_server_naming_the_field() {
    ensure_crds().await;
    let ns = TestNamespace::create(&client().await, "invalid").await;
    let n = ns.name();

    // The baselines are valid, so each rejection below is about its one change.
    kubectl_stdin(
        &["apply", "--dry-run=server", "-n", n, "-f", "-"],
        Some(&format!("{FUTURE_HEAD}{MAP}")),
    );
    kubectl_stdin(
        &["apply", "--dry-run=server", "-n", n, "-f", "-"],
        Some(&format!(
            "{TASK_HEAD}  call: {{function: std.sum}}\n  timeout: 30s\n  retry: {{maxAttempts: 3}}\n"
        )),
    );

    assert_rejected(
        n,
        "two body kinds in one future",
        &format!("{FUTURE_HEAD}{MAP}  call: {{function: std.sum}}\n"),
        &["spec", "exactly one", "map", "call"],
    );
    assert_rejected(
        n,
        "shardSize: 0",
        &format!("{FUTURE_HEAD}{MAP}    shardSize: 0\n"),
        &["spec.map.shardSize"],
    );
    assert_rejected(
        n,
        "fanout: 1",
        &format!("{FUTURE_HEAD}{MAP}    fanout: 1\n"),
        &["spec.map.fanout"],
    );
    assert_rejected(
        n,
        "an unknown reducer",
        &format!("{FUTURE_HEAD}{MAP}    reduce: average\n"),
        &["spec.map.reduce"],
    );
    assert_rejected(
        n,
        "a malformed duration (task timeout)",
        &format!("{TASK_HEAD}  call: {{function: std.sum}}\n  timeout: 5 minutes\n"),
        &["spec.timeout"],
    );
    assert_rejected(
        n,
        "a malformed duration (future deadline)",
        &format!("{FUTURE_HEAD}{MAP}  deadline: soon\n"),
        &["spec.deadline"],
    );
    assert_rejected(
        n,
        "a negative retry count (task)",
        &format!("{TASK_HEAD}  call: {{function: std.sum}}\n  retry: {{maxAttempts: -1}}\n"),
        &["spec.retry.maxAttempts"],
    );
    assert_rejected(
        n,
        "a negative retry count (future)",
        &format!("{FUTURE_HEAD}{MAP}  retry: {{maxAttempts: -2}}\n"),
        &["spec.retry.maxAttempts"],
    );
    assert_rejected(
        n,
        "a Task without call",
        &format!("{TASK_HEAD}  pool: default\n"),
        &["spec.call"],
    );
    let objects = |fields: &str| {
        format!(
            "{FUTURE_HEAD}  map:\n    source: {{objects: {{{fields}}}}}\n    function: {{function: std.wordcount}}\n"
        )
    };
    assert_rejected(
        n,
        "an objects url without s3://",
        &objects("url: 'https://bucket/prefix/'"),
        &[
            "spec.map.source.objects.url",
            kontinuum_api::messages::OBJECTS_URL,
        ],
    );
    assert_rejected(
        n,
        "an objects endpoint without a scheme",
        &objects("url: 's3://b/p/', endpoint: 's3.example.com'"),
        &[
            "spec.map.source.objects.endpoint",
            kontinuum_api::messages::OBJECTS_ENDPOINT,
        ],
    );
    assert_rejected(
        n,
        "an unknown objects read",
        &objects("url: 's3://b/p/', read: words"),
        &[
            "spec.map.source.objects.read",
            "Unsupported value: \"words\": supported values: \"lines\", \"objects\"",
        ],
    );
    kubectl_stdin(
        &["apply", "--dry-run=server", "-n", n, "-f", "-"],
        Some(&objects(
            "url: 's3://b/p/', endpoint: 'http://10.0.0.7:8014', read: objects",
        )),
    );
    assert_rejected(
        n,
        "an output url naming a prefix",
        &format!("{FUTURE_HEAD}{MAP}  output: {{url: 's3://b/results/'}}\n"),
        &["spec.output.url", kontinuum_api::messages::OUTPUT_URL],
    );
}

#[tokio::test]
async fn every_example_passes_server_side_dry_run() {
    ensure_crds().await;
    let ns = TestNamespace::create(&client().await, "examples").await;
    let dir = repo_root().join("examples");
    let files = yaml_files(&dir);
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut failures = Vec::new();
    for f in &files {
        let path = f.to_str().expect("utf-8 path");
        let r = kubectl_result(
            &["apply", "--dry-run=server", "-n", ns.name(), "-f", path],
            None,
        );
        if !r.success {
            failures.push(format!("{path}:\n{}{}", r.stdout, r.stderr));
        }
    }
    assert!(
        failures.is_empty(),
        "examples rejected by the API server:\n{}",
        failures.join("\n")
    );
}

/// Every CEL rule of the CRDs, as `(kind, path of the object it is on,
/// rule, the field it names)`.
type CelRule = (String, String, String, String);

fn cel_rules() -> Vec<CelRule> {
    fn walk(schema: &Value, path: &str, kind: &str, out: &mut Vec<CelRule>) {
        if let Some(Value::Array(rules)) = schema.get("x-kubernetes-validations") {
            for r in rules {
                let rule = r["rule"].as_str().unwrap_or_default().to_string();
                let field = format!("{path}{}", r["fieldPath"].as_str().unwrap_or_default());
                out.push((kind.to_string(), path.to_string(), rule, field));
            }
        }
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (name, s) in props {
                let child = if path.is_empty() {
                    name.clone()
                } else {
                    format!("{path}.{name}")
                };
                walk(s, &child, kind, out);
            }
        }
        assert!(
            schema
                .get("items")
                .is_none_or(|i| i.get("x-kubernetes-validations").is_none()),
            "a rule inside a list at {path}: give this test a sample for it"
        );
    }
    let mut out = Vec::new();
    for file in yaml_files(&repo_root().join("crds")) {
        let crd: Value = serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        walk(schema, "", &kind, &mut out);
    }
    out
}

/// A valid manifest of `kind`, named `bad`.
fn valid(kind: &str) -> Value {
    let spec = match kind {
        "Task" => json!({"call": {"function": "std.sum"}}),
        "HierarchicalFuture" => json!({"map": {"source": {"range": {"start": 0, "end": 10}},
                                                "function": {"function": "std.square"}}}),
        _ => json!({}),
    };
    json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": kind,
           "metadata": {"name": "bad"}, "spec": spec})
}

/// Sets `path` (dotted, from the resource's root) to `value`.
fn set_path(doc: &mut Value, path: &str, value: Value) {
    let mut at = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for part in &parts[..parts.len() - 1] {
        if at.get(*part).is_none() {
            at[*part] = json!({});
        }
        at = &mut at[*part];
    }
    at[parts[parts.len() - 1]] = value;
}

/// A manifest that breaks exactly `rule` at `path`; None for the one rule
/// `kontinuum run` cannot meet (spec immutability: it never updates).
fn breaking(kind: &str, path: &str, rule: &str) -> Option<Value> {
    let mut doc = valid(kind);
    if rule == kontinuum_api::duration::DURATION_RULE {
        set_path(&mut doc, path, json!("5 minutes"));
        return Some(doc);
    }
    match (kind, path) {
        (_, "spec") if rule == "self == oldSelf" => return None,
        ("HierarchicalFuture", "spec") => {
            doc["spec"]["call"] = json!({"function": "std.sum"});
        }
        ("HierarchicalFuture", "spec.map.source.objects") if rule.contains("self.url") => {
            doc["spec"]["map"]["source"] = json!({"objects": {"url": "http://bucket/prefix/"}});
        }
        ("HierarchicalFuture", "spec.map.source.objects") => {
            doc["spec"]["map"]["source"] =
                json!({"objects": {"url": "s3://bucket/prefix/", "endpoint": "ftp://minio:9000"}});
        }
        ("HierarchicalFuture", "spec.output") if rule.contains("self.url") => {
            doc["spec"]["output"] = json!({"url": "s3://bucket/results/"});
        }
        ("HierarchicalFuture", "spec.output") => {
            doc["spec"]["output"] =
                json!({"url": "s3://bucket/results/x.json", "endpoint": "store:8333"});
        }
        ("HierarchicalFuture", "spec.map.source.range") => {
            doc["spec"]["map"]["source"]["range"] = json!({"start": 10, "end": 3});
        }
        ("Task", "spec") => {
            doc["spec"]["delay"] = json!("5s");
            doc["spec"]["notBefore"] = json!("2030-01-01T00:00:00Z");
        }
        ("WorkerPool", "spec.scaling") => {
            doc["spec"]["scaling"] = json!({"minReplicas": 5, "maxReplicas": 2});
        }
        _ => panic!("no sample breaks {kind} {path}: {rule}; add one to this test"),
    }
    Some(doc)
}

/// Each CEL rule of the CRDs refuses with the words `kontinuum run` uses
/// for the same manifest: the API server's message contains the CLI's.
#[tokio::test]
async fn every_cel_rule_says_what_kontinuum_run_says() {
    ensure_crds().await;
    let ns = TestNamespace::create(&client().await, "words").await;
    let n = ns.name();
    let dir = tempfile::tempdir().unwrap();
    let rules = cel_rules();
    assert!(rules.len() >= 15, "{rules:?}");
    let mut compared = 0;
    for (kind, path, rule, field) in &rules {
        let Some(doc) = breaking(kind, path, rule) else {
            continue;
        };
        // JSON is YAML (and serde_yaml would spell exact numbers as maps).
        let yaml = serde_json::to_string_pretty(&doc).unwrap();
        let file = dir.path().join("bad.yaml");
        std::fs::write(&file, &yaml).unwrap();
        let (out, _) = kontinuum_e2e::procs::kontinuum_run_json(&file);
        assert!(
            !out.status.success(),
            "kontinuum run took {kind} {path}:\n{yaml}"
        );
        let cli = String::from_utf8_lossy(&out.stderr).into_owned();
        // `FILE:LINE: FIELD: MESSAGE`: the message after the field.
        let message = cli
            .lines()
            .find_map(|l| {
                l.split_once(&format!(" {field}: "))
                    .map(|(_, m)| m.to_string())
            })
            .unwrap_or_else(|| panic!("kontinuum run did not name {field}:\n{cli}"));
        let server = kubectl_result(
            &["apply", "--dry-run=server", "-n", n, "-f", "-"],
            Some(&yaml),
        );
        assert!(
            !server.success,
            "the API server took {kind} {path}:\n{yaml}"
        );
        assert!(
            server.stderr.contains(&message),
            "{kind} {path} ({rule}):\n  kontinuum run: {message}\n  API server: {}",
            server.stderr
        );
        compared += 1;
    }
    assert_eq!(
        compared,
        rules.len() - 2,
        "all but the two immutability rules"
    );
}
