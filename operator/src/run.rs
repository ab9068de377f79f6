//! Start-up and shutdown: metrics listener, Lease, store, worker API,
//! status writer, controllers — in that order, so that nothing touches the
//! store before this replica leads — then readiness, once the API server
//! admits Tasks and futures.

use crate::bridge::Bridge;
use crate::config::Flags;
use crate::error::Error;
use crate::job::Job;
use crate::leader::Elector;
use crate::metrics::Metrics;
use crate::reconcile::{self, Context};
use crate::status::Writer;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use kontinuum_api::{HierarchicalFuture, Task, WorkerPool};
use kontinuum_engine::{Engine, EngineConfig, EngineError};
use kube::runtime::controller::Controller;
use kube::runtime::events::Reporter;
use kube::runtime::watcher;
use kube::{Api, Client};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Runs until SIGTERM/Ctrl-C (Ok) or until something fatal happens, such
/// as losing the Lease (Err: the process should exit non-zero).
pub async fn run(flags: Flags) -> Result<(), Error> {
    let client = Client::try_default()
        .await
        .map_err(|e| Error::Config(format!("no usable kubeconfig or in-cluster config: {e}")))?;
    let metrics = Arc::new(Metrics::new());
    let ready = Arc::new(AtomicBool::new(false));
    let metrics_addr =
        crate::health::serve(flags.metrics_listen, metrics.clone(), ready.clone()).await?;
    tracing::info!(%metrics_addr, "serving /metrics, /healthz and /readyz");

    let elector = if flags.leader_elect {
        let namespace = flags.lease_namespace(client.default_namespace());
        let api: Api<Lease> = Api::namespaced(client.clone(), &namespace);
        let elector = Elector::new(
            api,
            flags.lease_name.clone(),
            Flags::identity(),
            flags.lease_duration,
            crate::leader::owner_pod(),
        );
        tracing::info!(lease = %format!("{namespace}/{}", flags.lease_name), identity = elector.identity(), "waiting to lead");
        tokio::select! {
            r = elector.acquire() => r?,
            _ = stop_signal() => return Ok(()),
        }
        metrics.leader.set(1);
        Some(Arc::new(elector))
    } else {
        metrics.leader.set(1);
        None
    };

    std::fs::create_dir_all(&flags.data).map_err(|source| Error::Data {
        path: flags.data.clone(),
        source,
    })?;
    let engine = open_store(&flags.data, flags.lease_duration).await?;
    let token = match &flags.token_file {
        Some(path) => Some(kontinuum_server::token_from_file(path)?),
        None => None,
    };
    let server = kontinuum_server::Server::bind_with(
        engine.clone(),
        flags.listen,
        token,
        Some(Arc::new(crate::tokenreview::TokenReviewer::new(
            client.clone(),
        ))),
    )
    .await?;
    let roster = server.roster();
    server.register_metrics(&metrics.registry)?;
    let api_addr = server.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut server_stop = stop_rx.clone();
    let server_task = tokio::spawn(server.run(async move {
        let _ = server_stop.wait_for(|s| *s).await;
    }));
    tracing::info!(%api_addr, store = %flags.data.display(), "worker API up");

    let bridge = Bridge::new(engine.clone());
    let reporter = Reporter {
        controller: "kontinuum-operator".into(),
        instance: Some(Flags::identity()),
    };
    let (writer, status) = Writer::new(
        client.clone(),
        bridge.clone(),
        flags.status_interval,
        metrics.clone(),
        reporter,
    );
    tokio::spawn(writer.run());
    let pool_changes = crate::feed::pool_channel();
    crate::feed::start(
        &engine,
        crate::feed::Sinks {
            status: status.clone(),
            pools: pool_changes.clone(),
        },
    );
    let task_controllers: Vec<Controller<Task>> = apis(&client, &flags.namespaces)
        .into_iter()
        .map(job_controller)
        .collect();
    let future_controllers: Vec<Controller<HierarchicalFuture>> = apis(&client, &flags.namespaces)
        .into_iter()
        .map(job_controller)
        .collect();
    let ctx = Arc::new(Context {
        client: client.clone(),
        bridge,
        status,
        metrics: metrics.clone(),
        tasks: task_controllers.iter().map(Controller::store).collect(),
        futures: future_controllers.iter().map(Controller::store).collect(),
    });
    let mut controllers = Vec::new();
    for controller in task_controllers {
        controllers.push(tokio::spawn(run_controller(controller, ctx.clone())));
    }
    for controller in future_controllers {
        controllers.push(tokio::spawn(run_controller(controller, ctx.clone())));
    }
    let settings = crate::pool::deployment::WorkerSettings {
        image: flags
            .worker_image
            .clone()
            .unwrap_or_else(|| format!("kontinuum.dev/kontinuum:{}", env!("CARGO_PKG_VERSION"))),
        server: flags.worker_server.clone().unwrap_or_else(|| {
            let host = if api_addr.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                api_addr.ip().to_string()
            };
            format!("http://{host}:{}", api_addr.port())
        }),
    };
    let pool_ctx = Arc::new(crate::pool::PoolContext {
        client: client.clone(),
        engine: engine.clone(),
        settings,
        metrics: metrics.clone(),
        roster,
        memory: Default::default(),
    });
    let pool_controllers: Vec<Controller<WorkerPool>> = scopes(&flags.namespaces)
        .into_iter()
        .map(|scope| pool_controller(&client, scope, crate::feed::pool_triggers(&pool_changes)))
        .collect();
    metrics.follow_pools(pool_controllers.iter().map(Controller::store).collect());
    for controller in pool_controllers {
        controllers.push(tokio::spawn(run_pool_controller(
            controller,
            pool_ctx.clone(),
        )));
    }
    // Everything runs. Readiness also waits until the API server admits the
    // resources users create (admission.rs), in the background: the Lease
    // must be renewed meanwhile.
    let probe = {
        let (client, ready) = (client.clone(), ready.clone());
        let namespace =
            crate::admission::probe_namespace(&flags.namespaces, client.default_namespace())
                .to_string();
        tokio::spawn(async move {
            let outcomes = crate::admission::wait_admitted(
                |kind| crate::admission::dry_run_create(&client, &namespace, kind),
                crate::admission::LIMIT,
                Duration::from_millis(500),
            )
            .await;
            crate::admission::report(&namespace, &outcomes);
            ready.store(true, Ordering::Relaxed);
            tracing::info!("ready");
        })
    };

    let lost = async {
        match &elector {
            Some(e) => e.keep().await,
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        _ = stop_signal() => Ok(()),
        e = lost => Err(e),
    };
    probe.abort();
    let _ = probe.await; // so that it cannot report ready after this
    ready.store(false, Ordering::Relaxed);
    if outcome.is_err() {
        // Another replica may already be opening the store: stop serving at
        // once rather than finish anything.
        engine.close();
        return outcome;
    }
    tracing::info!("stopping");
    for c in &controllers {
        c.abort();
    }
    let _ = stop_tx.send(true);
    engine.close();
    if let Ok(Err(e)) = server_task.await {
        tracing::warn!("worker API: {e}");
    }
    if let Some(e) = &elector {
        e.release().await;
    }
    Ok(())
}

/// Opens the store. A predecessor in another pod on the same volume (a
/// deleted pod's replacement starts while the old one still stops) may hold
/// it for a moment after handing back the Lease: wait for it, for at most
/// two thirds of a Lease duration, then give up (the pod restarts).
async fn open_store(data: &std::path::Path, lease: Duration) -> Result<Engine, Error> {
    let deadline = tokio::time::Instant::now() + lease * 2 / 3;
    let mut said = false;
    loop {
        let path = data.to_path_buf();
        match tokio::task::spawn_blocking(move || Engine::open(&path, EngineConfig::default()))
            .await?
        {
            Err(EngineError::Locked { .. }) if tokio::time::Instant::now() < deadline => {
                if !said {
                    tracing::info!(data = %data.display(), "the store is still held by the previous leader; waiting");
                    said = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return Ok(other?),
        }
    }
}

/// The scopes the operator watches: each of `namespaces`, or (None) all.
fn scopes(namespaces: &[String]) -> Vec<Option<&str>> {
    if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.iter().map(|ns| Some(ns.as_str())).collect()
    }
}

/// An Api over one scope.
fn api_in<K>(client: &Client, scope: Option<&str>) -> Api<K>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    match scope {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// One Api per watched namespace, or one for all.
fn apis<K>(client: &Client, namespaces: &[String]) -> Vec<Api<K>>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    scopes(namespaces)
        .into_iter()
        .map(|scope| api_in(client, scope))
        .collect()
}

fn job_controller<K: Job>(api: Api<K>) -> Controller<K> {
    Controller::new(api, watcher::Config::default().any_semantic())
}

async fn run_controller<K: Job>(controller: Controller<K>, ctx: Arc<Context>) {
    controller
        .run(reconcile::reconcile::<K>, reconcile::error_policy::<K>, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("controller: {e}");
            }
        })
        .await;
}

/// The WorkerPool controller of one scope (a namespace, or all): its
/// pools, their Deployments in the same scope (a namespaced operator may
/// not watch Deployments cluster-wide), and the engine's pool changes as
/// triggers.
fn pool_controller(
    client: &Client,
    scope: Option<&str>,
    engine_changes: impl futures::Stream<Item = kube::runtime::reflector::ObjectRef<WorkerPool>>
    + Send
    + 'static,
) -> Controller<WorkerPool> {
    let deployments: Api<Deployment> = api_in(client, scope);
    Controller::new(
        api_in(client, scope),
        watcher::Config::default().any_semantic(),
    )
    .owns(
        deployments,
        watcher::Config::default().labels(crate::pool::deployment::POOL_LABEL),
    )
    .reconcile_on(engine_changes)
}

async fn run_pool_controller(
    controller: Controller<WorkerPool>,
    ctx: Arc<crate::pool::PoolContext>,
) {
    controller
        .run(crate::pool::reconcile, crate::pool::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!("pool controller: {e}");
            }
        })
        .await;
}

/// Resolves at the first Ctrl-C or SIGTERM.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
