//! How fast a WorkerPool's Deployment follows its queue: submission of
//! work → the Deployment's `spec.replicas` raised, over repeated trials.
//!
//!   bench-scale --namespace NS --api URL --token-file F [--trials 20]
//!
//! Needs KUBECONFIG, the CRDs and an operator watching NS whose worker API
//! is URL (bench/operator.sh starts all of it). Each trial submits 10 tasks
//! to a pool with no workers (minReplicas 0, targetPerReplica 10,
//! scaleDownDelay 1s), times until the Deployment asks for a replica, then
//! cancels the tasks and waits for the pool to return to 0. Prints one JSON
//! line with p50/p99/max in ms.

use anyhow::{Context, bail};
use k8s_openapi::api::apps::v1::Deployment;
use kontinuum_api::ObjectId;
use kontinuum_server::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

const POOL: &str = "react";

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
        "spec": {"scaling": {"minReplicas": 0, "maxReplicas": 5,
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

    let mut samples = Vec::with_capacity(trials);
    for trial in 0..trials {
        let docs: Vec<_> = (0..10)
            .map(|i| {
                json!({"apiVersion": "kontinuum.dev/v1alpha1", "kind": "Task",
                    "metadata": {"name": format!("react-{}-{trial}-{i}", std::process::id()),
                                 "namespace": ns},
                    "spec": {"pool": POOL, "call": {"function": "std.echo"}}})
            })
            .collect();
        let names = api_client.submit(docs).await?;
        let submitted = Instant::now();
        wait_replicas(&deployments, |r| r >= 1, Duration::from_secs(30)).await?;
        samples.push(submitted.elapsed().as_secs_f64() * 1000.0);
        for name in names {
            let id: ObjectId = name.parse()?;
            api_client.cancel(&id).await?;
        }
        wait_replicas(&deployments, |r| r == 0, Duration::from_secs(30)).await?;
    }
    samples.sort_by(|a, b| a.total_cmp(b));
    let pick = |p: f64| samples[((samples.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "{}",
        json!({
            "bench": "pool-scale-reaction",
            "trials": trials,
            "p50_ms": pick(0.5).round(),
            "p99_ms": pick(0.99).round(),
            "max_ms": samples.last().map(|m| m.round()),
        })
    );
    let _ = pools.delete(POOL, &Default::default()).await;
    Ok(())
}
