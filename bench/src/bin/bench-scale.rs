//! How fast a WorkerPool's Deployment follows its queue: submission of
//! work → the Deployment's `spec.replicas` raised, over repeated trials.
//!
//!   bench-scale --namespace NS --api URL --token-file F [--trials 20]
//!               [--case tasks|map|all]
//!
//! Needs KUBECONFIG, the CRDs and an operator watching NS whose worker API
//! is URL (bench/operator.sh starts all of it). The pool has no workers
//! (minReplicas 0, maxReplicas 5, targetPerReplica 10, scaleDownDelay 1s).
//! Case `tasks`: each trial submits 10 tasks and times until the Deployment
//! asks for a replica. Case `map`: each trial submits one HierarchicalFuture
//! mapping over 1,000,000 items (shards of 1,000: one queued node, 1,000
//! tasks ahead) and times until the Deployment asks for maxReplicas. After
//! each trial the work is cancelled and the pool returns to 0. Prints one
//! JSON line per case with p50/p99/max in ms.

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kontinuum_api::ObjectId;
use kontinuum_server::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

const POOL: &str = "react";
const MAX_REPLICAS: i32 = 5;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

async fn replicas(api: &Api<Deployment>) -> anyhow::Result<Option<i32>> {
    Ok(api
        .get_opt(&format!("{POOL}-workers"))
        .await?
        .and_then(|d| d.spec.replicas))
}

async fn wait_replicas(
    api: &Api<Deployment>,
    want: impl Fn(i32) -> bool,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        if replicas(api).await?.is_some_and(&want) {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            bail!("the Deployment did not follow within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Ten tasks on the pool: a replica's worth.
fn tasks(ns: &str, trial: usize) -> Vec<serde_json::Value> {
    (0..10)
        .map(|i| {
            json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                "metadata": {"name": format!("react-{}-{trial}-{i}", std::process::id()),
                             "namespace": ns},
                "spec": {"pool": POOL, "call": {"function": "std.echo"}}})
        })
        .collect()
}

/// A map over 1,000,000 items in shards of 1,000: far more than the
/// pool's maximum, all of it in one node that no worker has split.
fn map(ns: &str, trial: usize) -> Vec<serde_json::Value> {
    vec![
        json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "HierarchicalFuture",
        "metadata": {"name": format!("react-map-{}-{trial}", std::process::id()),
                     "namespace": ns},
        "spec": {"pool": POOL,
                 "map": {"source": {"range": {"start": 0, "end": 1_000_000}},
                         "function": {"function": "std.echo"},
                         "shardSize": 1000}}}),
    ]
}

struct Bench {
    api: Client,
    deployments: Api<Deployment>,
    ns: String,
}

impl Bench {
    /// Per trial: submit `work`, time until the Deployment asks for at
    /// least `replicas`, cancel, wait for 0 again. Sorted, in ms.
    async fn trials(
        &self,
        trials: usize,
        replicas: i32,
        work: fn(&str, usize) -> Vec<serde_json::Value>,
    ) -> anyhow::Result<Vec<f64>> {
        let mut samples = Vec::with_capacity(trials);
        for trial in 0..trials {
            let names = self.api.submit(work(&self.ns, trial)).await?;
            let submitted = Instant::now();
            wait_replicas(
                &self.deployments,
                |r| r >= replicas,
                Duration::from_secs(30),
            )
            .await?;
            samples.push(submitted.elapsed().as_secs_f64() * 1000.0);
            for name in names {
                let id: ObjectId = name.parse()?;
                self.api.cancel(&id).await?;
            }
            wait_replicas(&self.deployments, |r| r == 0, Duration::from_secs(30)).await?;
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        Ok(samples)
    }
}

fn report(bench: &str, samples: &[f64]) {
    let pick = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{}",
        json!({
            "bench": bench,
            "trials": samples.len(),
            "p50_ms": pick(0.5).round(),
            "p99_ms": pick(0.99).round(),
            "max_ms": samples.last().map(|m| m.round()),
        })
    );
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let ns = arg(&args, "--namespace").context("--namespace NS is required")?;
    let url = arg(&args, "--api").context("--api URL is required")?;
    let token_file = arg(&args, "--token-file").context("--token-file F is required")?;
    let trials: usize = arg(&args, "--trials")
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20);
    if trials == 0 {
        bail!("--trials must be at least 1");
    }
    let token = std::fs::read_to_string(&token_file)?.trim().to_string();
    let api_client = Client::new(&url, Some(token))?;
    let kube = kube::Client::try_default().await.context("KUBECONFIG")?;
    let pools: Api<kube::api::DynamicObject> = Api::namespaced_with(
        kube.clone(),
        &ns,
        &kube::discovery::ApiResource {
            group: "kontinuum.dev".into(),
            version: "v1alpha1".into(),
            api_version: "kontinuum.dev/v1alpha1".into(),
            kind: "WorkerPool".into(),
            plural: "workerpools".into(),
        },
    );
    let pool = json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "WorkerPool",
        "metadata": {"name": POOL},
        "spec": {"scaling": {"minReplicas": 0, "maxReplicas": MAX_REPLICAS,
                             "targetPerReplica": 10, "scaleDownDelay": "1s"}}});
    pools
        .patch(
            POOL,
            &PatchParams::apply("bench-scale").force(),
            &Patch::Apply(&pool),
        )
        .await?;
    let deployments: Api<Deployment> = Api::namespaced(kube, &ns);
    wait_replicas(&deployments, |r| r == 0, Duration::from_secs(60)).await?;

    let case = arg(&args, "--case").unwrap_or_else(|| "all".into());
    let bench = Bench {
        api: api_client,
        deployments,
        ns,
    };
    if case == "tasks" || case == "all" {
        let samples = bench.trials(trials, 1, tasks).await?;
        report("pool-scale-reaction", &samples);
    }
    if case == "map" || case == "all" {
        let samples = bench.trials(trials, MAX_REPLICAS, map).await?;
        report("pool-scale-map", &samples);
    }
    let _ = pools.delete(POOL, &Default::default()).await;
    Ok(())
}
