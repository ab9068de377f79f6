//! Start-up and shutdown: metrics listener, the store directory's lock,
//! Lease, store, worker API, status writer, controllers — in that order, so
//! that nothing touches the store before this replica leads — then
//! readiness, once the API server admits Tasks and futures.
//!
//! The process leads until a signal (a clean stop: the Lease is handed
//! back), until the Lease is lost (it stops leading at once: nothing more
//! is served or written), or, when it restarts in place, until the store
//! fails. main.rs decides what follows an error.

use crate::bridge::Bridge;
use crate::config::Flags;
use crate::error::Error;
use crate::health::{Health, Source};
use crate::job::Job;
use crate::leader::Elector;
use crate::metrics::Metrics;
use crate::reconcile::{self, Context};
use crate::status::{StatusHandle, StatusMsg, Writer};
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
use std::time::Duration;
use tokio::task::JoinHandle;

/// How often the store's health is looked at.
const STORE_CHECK: Duration = Duration::from_millis(500);
/// After the store failed, how long an operator that restarts in place
/// keeps serving its failing probes and writing the statuses that say so.
const STOPPED_GRACE: Duration = Duration::from_secs(5);

/// Runs until SIGTERM/Ctrl-C (Ok) or until something ends its leadership
/// (Err: see [`Error::restart_delay`]).
pub async fn run(flags: Flags) -> Result<(), Error> {
    flags.timings().check().map_err(Error::Config)?;
    let kube_config = kube::Config::infer()
        .await
        .map_err(|e| Error::Config(format!("no usable kubeconfig or in-cluster config: {e}")))?;
    let client = Client::try_from(kube_config.clone())
        .map_err(|e| Error::Config(format!("cannot build a client of the API server: {e}")))?;
    let probe_client = crate::admission::probe_client(&kube_config)
        .map_err(|e| Error::Config(format!("cannot build the readiness probe's client: {e}")))?;
    let metrics = Arc::new(Metrics::new());
    let health = Arc::new(Health::default());
    let metrics_addr =
        crate::health::serve(flags.metrics_listen, metrics.clone(), health.clone()).await?;
    tracing::info!(%metrics_addr, "serving /metrics, /healthz and /readyz");

    std::fs::create_dir_all(&flags.data).map_err(|source| Error::Data {
        path: flags.data.clone(),
        source,
    })?;
    let _store_lock = tokio::select! {
        lock = crate::store_lock::claim(&flags.data) => lock?,
        _ = stop_signal() => return Ok(()),
    };
    let identity = flags.identity();
    let elector = flags.leader_elect.then(|| {
        let namespace = flags.lease_namespace(client.default_namespace());
        tracing::info!(lease = %format!("{namespace}/{}", flags.lease_name), %identity, "waiting to lead");
        Arc::new(Elector::new(
            Api::<Lease>::namespaced(client.clone(), &namespace),
            flags.lease_name.clone(),
            identity.clone(),
            flags.timings(),
            crate::leader::owner_pod(),
        ))
    });
    // Leading starts here. What ends it is watched from now on, in a task
    // of its own: the Lease is renewed while the store opens and the
    // services start, however long that takes.
    let mut lost: JoinHandle<Error> = match &elector {
        Some(elector) => {
            let sent = tokio::select! {
                sent = elector.acquire() => sent,
                _ = stop_signal() => return Ok(()),
            };
            let elector = elector.clone();
            tokio::spawn(async move { elector.keep(sent).await })
        }
        None => tokio::spawn(watch_api_server(
            client.clone(),
            flags.timings(),
            health.clone(),
        )),
    };
    metrics.leader.set(1);
    health.set_leading(true);
    let leading = async {
        let engine = open_store(&flags.data, flags.lease_duration).await?;
        tracing::info!(store = %flags.data.display(), store_id = engine.store_id(), "store open");
        let services = Services::start(
            &flags,
            &client,
            &probe_client,
            &engine,
            &metrics,
            &health,
            &identity,
        )
        .await?;
        Ok::<_, Error>((engine, services))
    };
    let started = tokio::select! {
        started = leading => Some(started?),
        e = &mut lost => return stop_leading(&metrics, &health, None, joined(e)),
        _ = stop_signal() => None,
    };
    let Some((engine, services)) = started else {
        lost.abort();
        if let Some(e) = &elector {
            e.release().await;
        }
        return Ok(());
    };
    let store_failed = watch_store(
        engine.clone(),
        services.status.clone(),
        health.clone(),
        flags.restarts_in_place(),
    );
    let outcome = tokio::select! {
        _ = stop_signal() => Ok(()),
        e = &mut lost => Err(joined(e)),
        e = store_failed => Err(e),
    };
    if let Err(e) = outcome {
        return stop_leading(&metrics, &health, Some((&engine, &services)), e);
    }
    metrics.leader.set(0);
    health.set_leading(false);
    tracing::info!("stopping");
    lost.abort();
    services.stop().await;
    engine.close();
    if let Some(e) = &elector {
        e.release().await;
    }
    Ok(())
}

/// The renewal task's end as an error (it ends only with one).
fn joined(outcome: Result<Error, tokio::task::JoinError>) -> Error {
    outcome.unwrap_or_else(Error::Join)
}

/// Leadership ended: say so, stop serving and writing at once rather than
/// finish anything (another replica may take the Lease soon), and hand the
/// reason up.
fn stop_leading(
    metrics: &Metrics,
    health: &Health,
    running: Option<(&Engine, &Services)>,
    why: Error,
) -> Result<(), Error> {
    metrics.leader.set(0);
    health.set_leading(false);
    tracing::error!("stopped leading: {why}");
    if let Some((engine, services)) = running {
        services.abort();
        engine.close();
    }
    Err(why)
}

/// What runs while this replica leads.
struct Services {
    status: StatusHandle,
    /// The controllers, which a clean stop lets finish their reconciles.
    controllers: Vec<JoinHandle<()>>,
    stop_controllers: tokio::sync::watch::Sender<bool>,
    /// The status writer and the readiness probe.
    tasks: Vec<JoinHandle<()>>,
    server: JoinHandle<Result<(), kontinuum_server::ServeError>>,
    stop_server: tokio::sync::watch::Sender<bool>,
}

impl Services {
    async fn start(
        flags: &Flags,
        client: &Client,
        probe_client: &Client,
        engine: &Engine,
        metrics: &Arc<Metrics>,
        health: &Arc<Health>,
        identity: &str,
    ) -> Result<Services, Error> {
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
        let (stop_server, server_stop) = tokio::sync::watch::channel(false);
        let server = tokio::spawn(serve_workers(server, server_stop, health.clone()));
        tracing::info!(%api_addr, "worker API up");
        let mut tasks = Vec::new();

        let bridge = Bridge::new(engine.clone());
        let reporter = Reporter {
            controller: "kontinuum-operator".into(),
            instance: Some(identity.to_string()),
        };
        let (writer, status) = Writer::new(
            client.clone(),
            bridge.clone(),
            flags.status_interval,
            metrics.clone(),
            reporter,
        );
        tasks.push(tokio::spawn(writer.run()));
        let pool_changes = crate::feed::pool_channel();
        crate::feed::start(
            engine,
            crate::feed::Sinks {
                status: status.clone(),
                pools: pool_changes.clone(),
            },
        );
        let pool_controllers: Vec<Controller<WorkerPool>> = scopes(&flags.namespaces)
            .into_iter()
            .map(|scope| pool_controller(client, scope, crate::feed::pool_triggers(&pool_changes)))
            .collect();
        let pool_stores = pool_controllers.iter().map(Controller::store).collect();
        let (stop_controllers, stopping) = tokio::sync::watch::channel(false);
        let settling = Arc::new(crate::pool::settling::Settling::new(pool_changes.clone()));
        let mut controllers = start_job_controllers(
            flags,
            client,
            JobSide {
                bridge,
                status: status.clone(),
                metrics: metrics.clone(),
                pools: pool_stores,
                roster: roster.clone(),
                settling: settling.clone(),
            },
            &stopping,
        );
        let settings = crate::pool::deployment::WorkerSettings {
            image: flags.worker_image.clone().unwrap_or_else(|| {
                format!("kontinuum.dev/kontinuum:{}", env!("CARGO_PKG_VERSION"))
            }),
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
            settling,
            memory: Default::default(),
            backoff: Default::default(),
        });
        metrics.follow_pools(pool_controllers.iter().map(Controller::store).collect());
        for controller in pool_controllers {
            controllers.push(tokio::spawn(run_pool_controller(
                controller.graceful_shutdown_on(stopped(stopping.clone())),
                pool_ctx.clone(),
            )));
        }
        // Readiness also waits until the API server admits the resources
        // users create (admission.rs), in the background: the Lease must be
        // renewed meanwhile.
        tasks.push(tokio::spawn(wait_admitted(
            probe_client.clone(),
            crate::admission::probe_namespace(&flags.namespaces, client.default_namespace())
                .to_string(),
            health.clone(),
        )));
        Ok(Services {
            status,
            controllers,
            stop_controllers,
            tasks,
            server,
            stop_server,
        })
    }

    /// Stops everything now (leadership lost): nothing more is served or
    /// written, whatever was under way.
    fn abort(&self) {
        for task in self.controllers.iter().chain(&self.tasks) {
            task.abort();
        }
        self.server.abort();
    }

    /// A clean stop: the controllers start no reconcile and finish those
    /// under way (for a few seconds at most), then the writer ends, and the
    /// worker API lets its requests finish.
    async fn stop(mut self) {
        let _ = self.stop_controllers.send(true);
        let finished = futures::future::join_all(self.controllers.iter_mut());
        if tokio::time::timeout(CONTROLLERS_STOP, finished)
            .await
            .is_err()
        {
            tracing::warn!("reconciles still running after {CONTROLLERS_STOP:?}: stopped");
        }
        for task in self.controllers.iter().chain(&self.tasks) {
            task.abort();
        }
        let _ = self.stop_server.send(true);
        if let Ok(Err(e)) = self.server.await {
            tracing::warn!("worker API: {e}");
        }
    }
}

/// The worker API until asked to stop; ending before that (its listener
/// failed) fails the probes: the process cannot serve workers.
async fn serve_workers(
    server: kontinuum_server::Server,
    mut stop: tokio::sync::watch::Receiver<bool>,
    health: Arc<Health>,
) -> Result<(), kontinuum_server::ServeError> {
    let mut asked = stop.clone();
    let outcome = server
        .run(async move {
            let _ = asked.wait_for(|s| *s).await;
        })
        .await;
    if !*stop.borrow_and_update() {
        let why = match &outcome {
            Ok(()) => "it stopped".to_string(),
            Err(e) => e.to_string(),
        };
        tracing::error!("the worker API ended while leading: {why}");
        health.report(
            Source::WorkerApi,
            Some(format!("the worker API ended: {why}")),
        );
    }
    outcome
}

/// What the Task and future controllers share with the rest.
struct JobSide {
    bridge: Bridge,
    status: StatusHandle,
    metrics: Arc<Metrics>,
    pools: Vec<kube::runtime::reflector::Store<WorkerPool>>,
    roster: kontinuum_server::Roster,
    /// Futures held back before their submission, for their pool's scaler.
    settling: Arc<crate::pool::settling::Settling>,
}

fn start_job_controllers(
    flags: &Flags,
    client: &Client,
    side: JobSide,
    stopping: &tokio::sync::watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let tasks: Vec<Controller<Task>> = apis(client, &flags.namespaces)
        .into_iter()
        .map(job_controller)
        .collect();
    let futures: Vec<Controller<HierarchicalFuture>> = apis(client, &flags.namespaces)
        .into_iter()
        .map(job_controller)
        .collect();
    let ctx = Arc::new(Context {
        client: client.clone(),
        bridge: side.bridge,
        status: side.status,
        metrics: side.metrics,
        tasks: tasks.iter().map(Controller::store).collect(),
        futures: futures.iter().map(Controller::store).collect(),
        pools: side.pools,
        roster: side.roster,
        settling: side.settling,
        leading_since: std::time::Instant::now(),
        backoff: Default::default(),
    });
    let stop = || stopped(stopping.clone());
    let mut handles: Vec<JoinHandle<()>> = tasks
        .into_iter()
        .map(|c| tokio::spawn(run_controller(c.graceful_shutdown_on(stop()), ctx.clone())))
        .collect();
    handles.extend(
        futures
            .into_iter()
            .map(|c| tokio::spawn(run_controller(c.graceful_shutdown_on(stop()), ctx.clone()))),
    );
    handles
}

/// How long a clean stop waits for reconciles under way.
const CONTROLLERS_STOP: Duration = Duration::from_secs(5);

/// Resolves once `stopping` says true (or its sender is gone).
async fn stopped(mut stopping: tokio::sync::watch::Receiver<bool>) {
    let _ = stopping.wait_for(|stop| *stop).await;
}

async fn wait_admitted(client: Client, namespace: String, health: Arc<Health>) {
    let outcomes = crate::admission::wait_admitted(
        |kind| crate::admission::dry_run_create(&client, &namespace, kind),
        |why| tracing::info!("{}", crate::admission::waiting_notice(&namespace, why)),
        crate::admission::LIMIT,
        Duration::from_millis(500),
    )
    .await;
    crate::admission::report(&namespace, &outcomes);
    health.set_admitted();
    tracing::info!("ready");
}

/// Watches the store. When a write fails (a full disk), the probes fail
/// with the reason and every status that is not final says the engine
/// stopped. An operator that restarts in place then ends (Err) after
/// [`STOPPED_GRACE`]; otherwise this never returns, and the liveness probe
/// has the kubelet restart the container.
async fn watch_store(
    engine: Engine,
    status: StatusHandle,
    health: Arc<Health>,
    restarts_in_place: bool,
) -> Error {
    let reason = loop {
        tokio::time::sleep(STORE_CHECK).await;
        if let Some(reason) = engine.failure() {
            break reason;
        }
    };
    tracing::error!("the store failed: {reason}; the probes fail until the operator restarts");
    health.report(Source::Store, Some(format!("the store failed: {reason}")));
    status
        .send(StatusMsg::EngineStopped {
            reason: reason.clone(),
        })
        .await;
    if !restarts_in_place {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(STOPPED_GRACE).await;
    Error::StoreFailed(reason)
}

/// Without leader election nothing else talks to the API server on a
/// timer: ask its version every retry period, and fail the probes while it
/// has not answered for the renew deadline. Never returns.
async fn watch_api_server(
    client: Client,
    timings: crate::leader::Timings,
    health: Arc<Health>,
) -> Error {
    let mut last_ok = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(timings.retry_period).await;
        let asked = tokio::time::Instant::now();
        match tokio::time::timeout(timings.renew_deadline, client.apiserver_version()).await {
            Ok(Ok(_)) => {
                last_ok = asked;
                health.report(Source::ApiServer, None);
            }
            Ok(Err(e)) if last_ok.elapsed() >= timings.renew_deadline => health.report(
                Source::ApiServer,
                Some(format!(
                    "the API server has not answered for {:?}: {e}",
                    last_ok.elapsed()
                )),
            ),
            Err(_) if last_ok.elapsed() >= timings.renew_deadline => health.report(
                Source::ApiServer,
                Some(format!(
                    "the API server has not answered for {:?}",
                    last_ok.elapsed()
                )),
            ),
            _ => {}
        }
    }
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
                log_controller_error(K::KIND.short(), &e);
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
                log_controller_error("pool", &e);
            }
        })
        .await;
}

/// A controller stream's error. A failed reconcile was logged by its
/// error policy already; anything else (a watch that fails, an object
/// gone from the cache) is logged here, where it is seen.
fn log_controller_error<E: std::error::Error, Q: std::error::Error>(
    controller: &str,
    error: &kube::runtime::controller::Error<E, Q>,
) {
    use kube::runtime::controller::Error as E2;
    match error {
        E2::ReconcilerFailed(..) | E2::ObjectNotFound(..) => tracing::debug!(controller, "{error}"),
        _ => tracing::warn!(controller, "{error}"),
    }
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
