//! Runs the real `helm` from PATH (tests/cluster/up.sh puts the pinned one
//! there) on the chart in charts/kontinuum.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::{HOW_TO_START, KubectlResult, kubeconfig, repo_root};

pub fn chart_dir() -> PathBuf {
    repo_root().join("charts/kontinuum")
}

/// The chart's path as an argument.
pub fn chart() -> String {
    chart_dir().to_string_lossy().into_owned()
}

fn run(args: &[&str], cluster: bool) -> KubectlResult {
    let mut cmd = Command::new("helm");
    cmd.args(args).stdin(Stdio::null());
    if cluster {
        cmd.env("KUBECONFIG", kubeconfig());
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm ({e}): it must be on PATH; {HOW_TO_START}"));
    KubectlResult {
        success: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// helm without the cluster (lint, template): its result whatever the status.
pub fn offline(args: &[&str]) -> KubectlResult {
    run(args, false)
}

/// helm against the test cluster (install, upgrade, uninstall, get).
pub fn cluster(args: &[&str]) -> KubectlResult {
    run(args, true)
}

/// Fails the test with helm's output unless it succeeded; returns stdout.
pub fn ok(r: KubectlResult, args: &[&str]) -> String {
    assert!(
        r.success,
        "helm {} failed:\nstdout: {}\nstderr: {}",
        args.join(" "),
        r.stdout,
        r.stderr
    );
    r.stdout
}

/// `helm template` of the chart with extra arguments (e.g. `--set`).
pub fn template(namespace: &str, extra: &[&str]) -> String {
    let chart = chart();
    let mut args = vec![
        "template",
        "kontinuum",
        chart.as_str(),
        "--namespace",
        namespace,
    ];
    args.extend_from_slice(extra);
    ok(offline(&args), &args)
}

/// The documents of a multi-document YAML stream (empty ones left out).
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    serde_yaml::Deserializer::from_str(yaml)
        .filter_map(|d| {
            let v = serde_json::Value::deserialize(d)
                .unwrap_or_else(|e| panic!("helm printed invalid YAML: {e}\n{yaml}"));
            (!v.is_null()).then_some(v)
        })
        .collect()
}

/// A release a test installed: uninstalled on drop (also when the test
/// fails), without waiting.
pub struct Release {
    pub name: String,
    pub namespace: String,
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = cluster(&[
            "uninstall",
            &self.name,
            "-n",
            &self.namespace,
            "--wait=false",
        ]);
    }
}

/// Installs the chart as `name` in `namespace` with the image `tag` (already
/// imported into the real node), the operator on the real node watching
/// `watch`, no store volume and no pool of the chart's; waits until ready.
pub fn install_on_real_node(name: &str, namespace: &str, tag: &str, watch: &[&str]) -> Release {
    install_on_real_node_with(name, namespace, tag, watch, serde_json::json!({}))
}

/// [`install_on_real_node`] with more values (top-level keys of `extra`
/// replace the defaults').
pub fn install_on_real_node_with(
    name: &str,
    namespace: &str,
    tag: &str,
    watch: &[&str],
    extra: serde_json::Value,
) -> Release {
    let placement = crate::real_node_placement();
    let mut values = serde_json::json!({
        "image": {"tag": tag, "pullPolicy": "Never"},
        "watchNamespaces": watch,
        "nodeSelector": placement["nodeSelector"],
        "tolerations": placement["tolerations"],
        "persistence": {"enabled": false},
        "workerPool": {"enabled": false},
    });
    if let (Some(values), Some(extra)) = (values.as_object_mut(), extra.as_object()) {
        values.extend(extra.clone());
    }
    let values_file =
        std::env::temp_dir().join(format!("kontinuum-values-{namespace}-{name}.json"));
    std::fs::write(&values_file, values.to_string()).expect("write the values file");
    let chart = chart();
    let values_path = values_file.to_string_lossy().into_owned();
    let args = [
        "install",
        name,
        chart.as_str(),
        "-n",
        namespace,
        "-f",
        values_path.as_str(),
        "--wait",
        "--timeout=180s",
    ];
    let release = Release {
        name: name.to_string(),
        namespace: namespace.to_string(),
    };
    let installed = cluster(&args);
    let _ = std::fs::remove_file(&values_file);
    ok(installed, &args);
    release
}
