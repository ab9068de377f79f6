//! The Helm chart without installing it: CRDs equal to crds/, versions that
//! follow the workspace, `helm lint --strict`, the values schema refusing
//! typos by name, and what the templates render.

use kontinuum_e2e::{helm, repo_root, yaml_files};
use serde_json::Value;

fn workspace_version() -> String {
    let text = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("Cargo.toml");
    let mut in_package = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_package = line.trim() == "[workspace.package]";
        } else if in_package && let Some(v) = line.strip_prefix("version = ") {
            return v.trim_matches('"').to_owned();
        }
    }
    panic!("no version in [workspace.package] of Cargo.toml");
}

#[test]
fn the_charts_crds_are_the_repos_crds_byte_for_byte() {
    let repo = yaml_files(&repo_root().join("crds"));
    let chart = yaml_files(&helm::chart_dir().join("crds"));
    let names = |v: &[std::path::PathBuf]| -> Vec<String> {
        v.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert!(!repo.is_empty(), "crds/ is empty");
    assert_eq!(
        names(&repo),
        names(&chart),
        "charts/kontinuum/crds must hold the files of crds/: cp crds/*.yaml charts/kontinuum/crds/"
    );
    for (a, b) in repo.iter().zip(&chart) {
        assert!(
            std::fs::read(a).unwrap() == std::fs::read(b).unwrap(),
            "{} differs from {}: cp crds/*.yaml charts/kontinuum/crds/",
            b.display(),
            a.display()
        );
    }
}

#[test]
fn the_chart_versions_follow_the_workspace() {
    let chart: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(helm::chart_dir().join("Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    let v = workspace_version();
    assert_eq!(chart["apiVersion"].as_str(), Some("v2"));
    assert_eq!(chart["appVersion"].as_str(), Some(v.as_str()), "appVersion");
    assert_eq!(chart["version"].as_str(), Some(v.as_str()), "version");
}

#[test]
fn helm_lint_strict_is_clean_with_default_and_other_values() {
    let chart = helm::chart();
    for extra in [
        &[][..],
        &["--set", "persistence.enabled=false"][..],
        &[
            "--set",
            "watchNamespaces={a,b}",
            "--set",
            "tokenSecret=shared",
        ][..],
        &[
            "--set",
            "workerPool.scaling=null",
            "--set",
            "workerPool.replicas=2",
        ][..],
        &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "rbac.create=false",
            "--set",
            "serviceAccount.create=false",
            "--set",
            "serviceAccount.name=mine",
        ][..],
    ] {
        let mut args = vec!["lint", "--strict", chart.as_str()];
        args.extend_from_slice(extra);
        let out = helm::ok(helm::offline(&args), &args);
        assert!(
            !out.contains("[WARNING]")
                && !out.contains("[ERROR]")
                && out.contains("0 chart(s) failed"),
            "helm {}:\n{out}",
            args.join(" ")
        );
    }
}

/// `helm template` with one values file; its result.
fn template_with_values(values: &str) -> kontinuum_e2e::KubectlResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("values.yaml");
    std::fs::write(&file, values).expect("write values");
    let chart = helm::chart();
    helm::offline(&[
        "template",
        "kontinuum",
        &chart,
        "-f",
        file.to_str().unwrap(),
    ])
}

#[test]
fn a_misspelt_or_mistyped_value_is_refused_naming_the_key() {
    for (values, key) in [
        ("persistance:\n  enabled: false\n", "persistance"),
        ("image:\n  tga: v1\n", "tga"),
        ("workerPool:\n  scaling:\n    maxReplica: 3\n", "maxReplica"),
        (
            "serviceMonitor:\n  enabled: yes-please\n",
            "/serviceMonitor/enabled",
        ),
        ("replicas: two\n", "/replicas"),
        ("statusInterval: 1 second\n", "/statusInterval"),
        (
            "uninstallHook:\n  timeout: soon\n",
            "/uninstallHook/timeout",
        ),
        ("uninstallHook:\n  enable: false\n", "enable"),
    ] {
        let r = template_with_values(values);
        assert!(!r.success, "values {values:?} were accepted:\n{}", r.stdout);
        assert!(
            r.stderr.contains("schema") && r.stderr.contains(key),
            "the error for {values:?} does not name {key}:\n{}",
            r.stderr
        );
    }
    // The same keys, spelt right, are accepted.
    let r = template_with_values(
        "persistence:\n  enabled: false\nimage:\n  tag: v1\nworkerPool:\n  scaling:\n    maxReplicas: 3\nreplicas: 2\n",
    );
    assert!(r.success, "{}", r.stderr);
}

fn find<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

fn only<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = find(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, got {}", found.len());
    found[0]
}

#[test]
fn the_operator_deployment_is_locked_down_and_wired() {
    let docs = helm::documents(&helm::template("kns", &[]));
    let d = only(&docs, "Deployment");
    assert_eq!(d["spec"]["strategy"]["type"], "Recreate");
    assert_eq!(d["spec"]["replicas"], 1);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(
        c["image"],
        format!("kontinuum.dev/kontinuum:{}", workspace_version())
    );
    assert_eq!(c["imagePullPolicy"], "IfNotPresent");
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"], serde_json::json!(["ALL"]));
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for a in [
        "--data=/data",
        "--leader-elect=true",
        "--listen=0.0.0.0:7070",
        "--metrics-listen=0.0.0.0:9090",
    ] {
        assert!(args.contains(&a), "{a} not in {args:?}");
    }
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], "metrics");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    let env: Vec<(&str, &Value)> = c["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e))
        .collect();
    let get = |n: &str| {
        env.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no env {n}"))
    };
    assert_eq!(
        get("POD_NAMESPACE")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(
        get("POD_NAME")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(get("KONTINUUM_WORKER_IMAGE")["value"], c["image"]);
    assert_eq!(
        get("KONTINUUM_WORKER_SERVER")["value"],
        "http://kontinuum.kns.svc:7070"
    );
    let mounts = c["volumeMounts"].as_array().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["name"] == "data" && m["mountPath"] == "/data")
    );
    let data = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "data")
        .unwrap();
    assert_eq!(data["persistentVolumeClaim"]["claimName"], "kontinuum-data");
    let pvc = only(&docs, "PersistentVolumeClaim");
    assert_eq!(pvc["metadata"]["name"], "kontinuum-data");
    assert!(
        pvc["spec"].get("storageClassName").is_none(),
        "default class: no storageClassName"
    );

    let svc = only(&docs, "Service");
    let ports: Vec<(&str, i64)> = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p["port"].as_i64().unwrap()))
        .collect();
    assert_eq!(ports, [("api", 7070), ("metrics", 9090)]);

    // Without persistence: an emptyDir, and no claim at all.
    let docs = helm::documents(&helm::template(
        "kns",
        &[
            "--set",
            "persistence.enabled=false",
            "--set",
            "persistence.storageClass=fast",
        ],
    ));
    assert!(find(&docs, "PersistentVolumeClaim").is_empty());
    let d = only(&docs, "Deployment");
    let vols = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
    assert!(
        vols.iter()
            .any(|v| v["name"] == "data" && v.get("emptyDir").is_some())
    );
    let docs = helm::documents(&helm::template(
        "kns",
        &["--set", "persistence.storageClass=-"],
    ));
    assert_eq!(
        only(&docs, "PersistentVolumeClaim")["spec"]["storageClassName"],
        ""
    );
}

#[test]
fn the_default_worker_pool_follows_the_values() {
    let docs = helm::documents(&helm::template("kns", &[]));
    let wp = only(&docs, "WorkerPool");
    assert_eq!(wp["metadata"]["name"], "default");
    assert_eq!(wp["spec"]["concurrency"], 8);
    assert_eq!(wp["spec"]["scaling"]["maxReplicas"], 20);
    // std.exec runs commands in the worker pods: the chart's pool denies it.
    assert_eq!(
        wp["spec"]["worker"]["functions"]["deny"],
        serde_json::json!(["std.exec"])
    );
    let docs = helm::documents(&helm::template(
        "kns",
        &["--set-json", "workerPool.worker.functions.deny=[]"],
    ));
    let wp = only(&docs, "WorkerPool");
    assert_eq!(
        wp["spec"]["worker"]["functions"]["deny"],
        serde_json::json!([])
    );
    let docs = helm::documents(&helm::template(
        "kns",
        &[
            "--set",
            "workerPool.scaling=null",
            "--set",
            "workerPool.replicas=3",
            "--set",
            "workerPool.concurrency=2",
        ],
    ));
    let wp = only(&docs, "WorkerPool");
    assert_eq!(wp["spec"]["replicas"], 3);
    assert_eq!(wp["spec"]["concurrency"], 2);
    assert!(wp["spec"].get("scaling").is_none());
    let docs = helm::documents(&helm::template(
        "kns",
        &["--set", "workerPool.enabled=false"],
    ));
    assert!(find(&docs, "WorkerPool").is_empty());
}

#[test]
fn placement_set_once_places_the_operator_and_the_workers() {
    let selector = serde_json::json!({"pool": "batch"});
    let toleration = serde_json::json!(
        [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}]
    );
    let placement = serde_json::json!({"nodeSelector": selector, "tolerations": toleration});
    let set = format!("placement={placement}");
    let docs = helm::documents(&helm::template("kns", &["--set-json", &set]));
    let operator = &only(&docs, "Deployment")["spec"]["template"]["spec"];
    let workers = &only(&docs, "WorkerPool")["spec"]["template"]["spec"];
    for (who, spec) in [("operator", operator), ("workers", workers)] {
        assert_eq!(spec["nodeSelector"], selector, "{who}: {spec}");
        assert_eq!(spec["tolerations"], toleration, "{who}: {spec}");
    }
    // Each side's own keys win over placement's, and only for that side.
    let docs = helm::documents(&helm::template(
        "kns",
        &[
            "--set-json",
            &set,
            "--set-json",
            r#"nodeSelector={"role":"control"}"#,
            "--set-json",
            r#"workerPool.template={"spec":{"nodeSelector":{"gpu":"yes"}}}"#,
        ],
    ));
    let operator = &only(&docs, "Deployment")["spec"]["template"]["spec"];
    let workers = &only(&docs, "WorkerPool")["spec"]["template"]["spec"];
    assert_eq!(
        operator["nodeSelector"],
        serde_json::json!({"role": "control"})
    );
    assert_eq!(operator["tolerations"], toleration);
    assert_eq!(workers["nodeSelector"], serde_json::json!({"gpu": "yes"}));
    assert_eq!(workers["tolerations"], toleration);
    // Without placement the pool's template stays as written (none).
    let docs = helm::documents(&helm::template("kns", &[]));
    assert!(only(&docs, "WorkerPool")["spec"].get("template").is_none());
}

#[test]
fn uninstall_runs_a_pre_delete_job_as_the_operator_placed_like_it() {
    let placement = serde_json::json!({
        "nodeSelector": {"pool": "system"},
        "tolerations": [{"key": "system", "operator": "Exists", "effect": "NoSchedule"}],
    });
    let docs = helm::documents(&helm::template(
        "kns",
        &[
            "--set-json",
            &format!("placement={placement}"),
            "--set-json",
            r#"watchNamespaces=["kns","jobs"]"#,
            "--set",
            "uninstallHook.timeout=1m30s",
        ],
    ));
    let job = only(&docs, "Job");
    assert_eq!(job["metadata"]["annotations"]["helm.sh/hook"], "pre-delete");
    assert_eq!(job["metadata"]["namespace"], "kns");
    // 90 s of waiting, 30 s of giving up, 90 s for the pod to start twice.
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 210);
    let pod = &job["spec"]["template"]["spec"];
    let operator = &only(&docs, "Deployment")["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], operator["serviceAccountName"]);
    assert_eq!(pod["nodeSelector"], placement["nodeSelector"]);
    assert_eq!(pod["tolerations"], placement["tolerations"]);
    assert_eq!(pod["securityContext"], operator["securityContext"]);
    let container = &pod["containers"][0];
    assert_eq!(container["image"], operator["containers"][0]["image"]);
    assert_eq!(
        container["command"],
        serde_json::json!(["/usr/local/bin/kontinuum-operator", "uninstall"])
    );
    assert_eq!(
        container["args"],
        serde_json::json!(["--timeout=1m30s", "--namespace=kns", "--namespace=jobs"])
    );
    // The ServiceAccount may delete what the Job deletes.
    let rules: Vec<&Value> = find(&docs, "ClusterRole")
        .into_iter()
        .flat_map(|r| r["rules"].as_array().unwrap())
        .collect();
    let may = |resource: &str, verb: &str| {
        rules.iter().any(|r| {
            r["apiGroups"][0] == "kontinuum.dev"
                && r["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|x| x == resource)
                && r["verbs"].as_array().unwrap().iter().any(|x| x == verb)
        })
    };
    for resource in ["tasks", "futures", "workerpools"] {
        assert!(may(resource, "delete"), "no delete on {resource}");
        assert!(may(resource, "list"), "no list on {resource}");
    }
    assert!(may("tasks", "patch") && may("futures", "patch"));
    // Off: no Job.
    let docs = helm::documents(&helm::template(
        "kns",
        &["--set", "uninstallHook.enabled=false"],
    ));
    assert!(find(&docs, "Job").is_empty());
}

/// The cases of a value `auto|true|false` whose `auto` means "when the
/// cluster serves `api`": helm's extra arguments and how many objects each
/// should render (auto without and with the API, true without it, false
/// with it).
fn auto_value_cases(api: &str, value: &str) -> [(Vec<String>, usize); 4] {
    let api = format!("--api-versions={api}");
    let set = |v: &str| ["--set".to_string(), format!("{value}={v}")];
    [
        (vec![], 0),
        (vec![api.clone()], 1),
        (set("true").to_vec(), 1),
        ([vec![api], set("false").to_vec()].concat(), 0),
    ]
}

fn template_args(namespace: &str, args: &[String]) -> Vec<Value> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    helm::documents(&helm::template(namespace, &args))
}

#[test]
fn the_service_monitor_renders_only_when_asked_or_available() {
    for (extra, expected) in auto_value_cases("monitoring.coreos.com/v1", "serviceMonitor.enabled")
    {
        let docs = template_args("kns", &extra);
        let sms = find(&docs, "ServiceMonitor");
        assert_eq!(sms.len(), expected, "{extra:?}");
        if let Some(sm) = sms.first() {
            let ep = &sm["spec"]["endpoints"][0];
            assert_eq!(ep["port"], "metrics");
            assert_eq!(ep["honorLabels"], true);
        }
        // The workers' PodMonitor comes and goes with it.
        let pms = find(&docs, "PodMonitor");
        assert_eq!(pms.len(), expected, "{extra:?}");
        if let Some(pm) = pms.first() {
            assert_eq!(
                pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
                "kontinuum-worker"
            );
            assert_eq!(pm["spec"]["namespaceSelector"]["any"], true);
            let ep = &pm["spec"]["podMetricsEndpoints"][0];
            assert_eq!(ep["port"], "metrics");
            assert_eq!(ep["honorLabels"], true);
        }
    }
    let docs = helm::documents(&helm::template(
        "kns",
        &[
            "--set",
            "serviceMonitor.enabled=true",
            "--set",
            "watchNamespaces={a,b}",
        ],
    ));
    let pm = only(&docs, "PodMonitor");
    assert_eq!(
        pm["spec"]["namespaceSelector"]["matchNames"],
        serde_json::json!(["a", "b"])
    );
}

#[test]
fn the_finalizer_policy_renders_when_asked_or_available_and_binds_the_watched_namespaces() {
    for (extra, expected) in auto_value_cases(
        "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",
        "finalizerPolicy.enabled",
    ) {
        let docs = template_args("kns", &extra);
        assert_eq!(
            find(&docs, "MutatingAdmissionPolicy").len(),
            expected,
            "{extra:?}"
        );
        assert_eq!(
            find(&docs, "MutatingAdmissionPolicyBinding").len(),
            expected,
            "{extra:?}"
        );
    }
    let on = ["--set", "finalizerPolicy.enabled=true"];
    let docs = helm::documents(&helm::template("kns", &on));
    let policy = only(&docs, "MutatingAdmissionPolicy");
    let name = policy["metadata"]["name"].as_str().unwrap();
    assert_eq!(name, "kontinuum-kns-cancel-finalizer");
    let rule = &policy["spec"]["matchConstraints"]["resourceRules"][0];
    assert_eq!(rule["apiGroups"], serde_json::json!(["kontinuum.dev"]));
    assert_eq!(rule["operations"], serde_json::json!(["CREATE"]));
    assert_eq!(rule["resources"], serde_json::json!(["tasks", "futures"]));
    assert_eq!(policy["spec"]["failurePolicy"], "Ignore");
    let expression = policy["spec"]["mutations"][0]["applyConfiguration"]["expression"]
        .as_str()
        .unwrap();
    assert!(
        expression.contains("\"kontinuum.dev/cancel\""),
        "{expression}"
    );
    // All namespaces when the operator serves all of them...
    let binding = only(&docs, "MutatingAdmissionPolicyBinding");
    assert_eq!(binding["spec"]["policyName"], name);
    assert!(binding["spec"].get("matchResources").is_none(), "{binding}");
    // ...and only the watched ones otherwise: nothing else would release it.
    let mut args = on.to_vec();
    args.extend(["--set", "watchNamespaces={a,b}"]);
    let docs = helm::documents(&helm::template("kns", &args));
    let binding = only(&docs, "MutatingAdmissionPolicyBinding");
    let selector = &binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0];
    assert_eq!(selector["key"], "kubernetes.io/metadata.name");
    assert_eq!(selector["operator"], "In");
    assert_eq!(selector["values"], serde_json::json!(["a", "b"]));
}

#[test]
fn the_dashboard_configmap_carries_the_dashboard_for_the_sidecar() {
    let docs = helm::documents(&helm::template("kns", &[]));
    let cm = only(&docs, "ConfigMap");
    assert_eq!(cm["metadata"]["labels"]["grafana_dashboard"], "1");
    let shipped =
        std::fs::read_to_string(helm::chart_dir().join("dashboards/kontinuum.json")).unwrap();
    assert_eq!(
        cm["data"]["kontinuum.json"].as_str(),
        Some(shipped.trim_end())
    );
    let docs = helm::documents(&helm::template(
        "kns",
        &["--set", "dashboards.enabled=false"],
    ));
    assert!(find(&docs, "ConfigMap").is_empty());
}

#[test]
fn rbac_is_cluster_wide_or_per_watched_namespace() {
    let docs = helm::documents(&helm::template("kns", &[]));
    let bindings: Vec<&str> = find(&docs, "ClusterRoleBinding")
        .iter()
        .map(|b| b["roleRef"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(bindings, ["kontinuum-kns", "kontinuum-kns-tokenreview"]);
    assert_eq!(
        find(&docs, "RoleBinding").len(),
        1,
        "only the leader election binding"
    );
    let docs = helm::documents(&helm::template("kns", &["--set", "watchNamespaces={a,b}"]));
    let bindings: Vec<&str> = find(&docs, "ClusterRoleBinding")
        .iter()
        .map(|b| b["roleRef"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(bindings, ["kontinuum-kns-tokenreview"]);
    let mut rb: Vec<(&str, &str)> = find(&docs, "RoleBinding")
        .iter()
        .map(|b| {
            (
                b["metadata"]["namespace"].as_str().unwrap(),
                b["roleRef"]["name"].as_str().unwrap(),
            )
        })
        .collect();
    rb.sort();
    assert_eq!(
        rb,
        [
            ("a", "kontinuum-kns"),
            ("b", "kontinuum-kns"),
            ("kns", "kontinuum-leader-election")
        ]
    );
    let d = only(&docs, "Deployment");
    let args = d["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(
        args.contains("--namespace=a") && args.contains("--namespace=b"),
        "{args}"
    );
}
