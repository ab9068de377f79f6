//! The last step before /readyz answers 200: wait until the API server
//! admits creates of Tasks and HierarchicalFutures.
//!
//! Right after the CRDs are created for the first time, a
//! MutatingAdmissionPolicy that matches them (the chart's finalizer policy)
//! makes the API server refuse their creates with 503 "Resource kind ... not
//! found" until its schema cache has caught up: it polls its own OpenAPI
//! every few seconds, and this refusal ignores the policy's failurePolicy.
//! `helm install --wait` and `kubectl rollout status` wait for readiness, so
//! probing here (server-side dry-run creates, nothing stored) means the
//! user's first `kubectl apply` after them is admitted.
//!
//! This wait is expected on every fresh install, so it is said once, at
//! INFO, with what it waits for. The probes go through a client of their
//! own ([`probe_client`]): the operator's usual client retries a 503 by
//! itself and logs every 5xx at ERROR, which made an expected wait look
//! like a failure; the loop here does the asking again instead.

use kontinuum_api::{HierarchicalFuture, Task};
use kube::api::PostParams;
use kube::client::ConfigExt;
use kube::{Api, Client, Config};
use std::future::Future;
use std::time::Duration;

/// The kinds probed, by their Kubernetes kind.
pub const KINDS: [&str; 2] = ["Task", "HierarchicalFuture"];

/// What one probe's answer means.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Creates of this kind are admitted.
    Admitted,
    /// Not yet (the 503 above, or the API server not reachable): ask again.
    NotYet(String),
    /// The probe cannot tell (no permission to create, no such namespace, a
    /// refusal that is not about admission): stop probing this kind, since
    /// waiting would not change the answer.
    CannotTell(String),
}

/// Judges the answer to one dry-run create.
pub fn judge(answer: &Result<(), kube::Error>) -> Verdict {
    match answer {
        Ok(()) => Verdict::Admitted,
        // 503 is the window above; other 5xx and 429 (priority and
        // fairness asking to come back later) may pass too.
        Err(kube::Error::Api(s)) if s.code >= 500 || s.code == 429 => {
            Verdict::NotYet(format!("{} ({})", s.message, s.code))
        }
        Err(kube::Error::Api(s)) => Verdict::CannotTell(format!("{} ({})", s.message, s.code)),
        Err(e) => Verdict::NotYet(e.to_string()),
    }
}

/// How long readiness waits for admission before it gives up and reports
/// ready anyway (the operator itself works; only creates would fail, with
/// the API server's own message). The window after a CRD is first created
/// lasts seconds.
pub const LIMIT: Duration = Duration::from_secs(60);

/// What [`wait_admitted`] found, per kind in [`KINDS`] order.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    pub kind: &'static str,
    pub verdict: Verdict,
    pub probes: u32,
}

/// What the wait says when it starts waiting (once, whatever the number
/// of kinds and refusals): what it waits for, in `ns`, and why.
pub fn waiting_notice(ns: &str, why: &str) -> String {
    format!(
        "waiting until the API server admits creates of Tasks and HierarchicalFutures in \
         namespace {ns} (it refuses them for a few seconds after the CRDs are installed: {why}); \
         /readyz answers 503 until then, at most {LIMIT:?}"
    )
}

/// Probes each kind until it is admitted, cannot tell, or `limit` has
/// passed since the start (then the last `NotYet` is returned). `probe`
/// makes one dry-run create of the kind it is given; `notice` is called
/// once, with the first refusal's reason, if the wait has to wait at all.
pub async fn wait_admitted<F, Fut>(
    mut probe: F,
    mut notice: impl FnMut(&str),
    limit: Duration,
    pause: Duration,
) -> Vec<Outcome>
where
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    let mut noticed = false;
    let deadline = tokio::time::Instant::now() + limit;
    let mut outcomes = Vec::new();
    for kind in KINDS {
        let mut probes = 0;
        let verdict = loop {
            probes += 1;
            let verdict = judge(&probe(kind).await);
            match &verdict {
                Verdict::NotYet(why) if tokio::time::Instant::now() < deadline => {
                    if !noticed {
                        noticed = true;
                        notice(why);
                    }
                    tokio::time::sleep(pause).await;
                }
                _ => break verdict,
            }
        };
        outcomes.push(Outcome {
            kind,
            verdict,
            probes,
        });
    }
    outcomes
}

/// The namespace to probe in: the first watched one (the chart's policy is
/// bound to exactly those), else `fallback` (the client's default).
pub fn probe_namespace<'a>(watched: &'a [String], fallback: &'a str) -> &'a str {
    watched.first().map(String::as_str).unwrap_or(fallback)
}

/// How long one probe may take before it counts as not answered.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The client the probes use: the operator's connection settings and
/// credentials, without the usual client's retry of 5xx answers and its
/// per-request trace layer (which logs each 5xx at ERROR). A refusal comes
/// back as it is, to be judged by [`judge`].
pub fn probe_client(config: &Config) -> Result<Client, kube::Error> {
    let https = config.rustls_https_connector()?;
    let http = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(https);
    let service = tower::ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(tower::BoxError::from)
        .service(http);
    Ok(Client::new(service, config.default_namespace.clone()))
}

/// One server-side dry-run create of a minimal resource of `kind` (one of
/// [`KINDS`]) in `ns`.
pub async fn dry_run_create(client: &Client, ns: &str, kind: &str) -> Result<(), kube::Error> {
    if kind == <Task as kube::Resource>::kind(&()) {
        dry_run::<Task>(client, ns).await
    } else {
        dry_run::<HierarchicalFuture>(client, ns).await
    }
}

/// The smallest valid resource of kind `K`: both kinds take a single call
/// as their body. A generated name, so that it never meets an existing one.
fn probe_object<K>() -> Result<K, serde_json::Error>
where
    K: kube::Resource<DynamicType = ()> + serde::de::DeserializeOwned,
{
    serde_json::from_value(serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": {"generateName": "kontinuum-admission-probe-"},
        "spec": {"call": {"function": "std.echo"}},
    }))
}

async fn dry_run<K>(client: &Client, ns: &str) -> Result<(), kube::Error>
where
    K: kube::Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + std::fmt::Debug
        + serde::Serialize
        + serde::de::DeserializeOwned,
{
    let object: K = probe_object().map_err(kube::Error::SerdeError)?;
    let params = PostParams {
        dry_run: true,
        field_manager: Some("kontinuum-operator".into()),
    };
    let api = Api::<K>::namespaced(client.clone(), ns);
    match tokio::time::timeout(PROBE_TIMEOUT, api.create(&params, &object)).await {
        Ok(created) => created.map(|_| ()),
        Err(_) => Err(kube::Error::Service(
            format!("no answer within {PROBE_TIMEOUT:?}").into(),
        )),
    }
}

/// Logs what [`wait_admitted`] found.
pub fn report(ns: &str, outcomes: &[Outcome]) {
    for o in outcomes {
        match &o.verdict {
            Verdict::Admitted => {
                tracing::info!(
                    kind = o.kind,
                    namespace = ns,
                    probes = o.probes,
                    "the API server admits creates"
                )
            }
            Verdict::NotYet(why) => tracing::warn!(
                kind = o.kind,
                namespace = ns,
                probes = o.probes,
                "the API server still refuses creates after {LIMIT:?} ({why}); reporting ready anyway"
            ),
            Verdict::CannotTell(why) => tracing::warn!(
                kind = o.kind,
                namespace = ns,
                "cannot probe whether the API server admits creates ({why}); not waiting for it"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    fn api(code: u16, message: &str) -> Result<(), kube::Error> {
        Err(kube::Error::Api(Box::new(
            Status::failure(message, "").with_code(code),
        )))
    }

    const UNKNOWN_KIND: &str = "Resource kind kontinuum.dev/v1alpha1, Kind=Task not found. There can be a delay between when CustomResourceDefinitions are created and when they are available.";

    #[test]
    fn the_schema_cache_window_is_waited_out_and_refusals_are_not() {
        assert_eq!(judge(&Ok(())), Verdict::Admitted);
        assert!(
            matches!(judge(&api(503, UNKNOWN_KIND)), Verdict::NotYet(m) if m.contains("There can be a delay"))
        );
        assert!(matches!(judge(&api(500, "etcd")), Verdict::NotYet(_)));
        assert!(matches!(judge(&api(429, "too many")), Verdict::NotYet(_)));
        assert!(
            matches!(judge(&api(403, "forbidden")), Verdict::CannotTell(m) if m.contains("403"))
        );
        assert!(matches!(
            judge(&api(404, "namespaces \"x\" not found")),
            Verdict::CannotTell(_)
        ));
        assert!(matches!(
            judge(&api(422, "spec.call: Required")),
            Verdict::CannotTell(_)
        ));
    }

    /// A scripted API server: each probe takes the next answer.
    type Asked = Arc<Mutex<Vec<&'static str>>>;
    type Answer = std::future::Ready<Result<(), kube::Error>>;

    fn scripted(
        answers: Vec<Result<(), kube::Error>>,
    ) -> (impl FnMut(&'static str) -> Answer, Asked) {
        let answers = Arc::new(Mutex::new(VecDeque::from(answers)));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let probe = move |kind| {
            log.lock().unwrap().push(kind);
            std::future::ready(
                answers
                    .lock()
                    .unwrap()
                    .pop_front()
                    .expect("a probe more than scripted"),
            )
        };
        (probe, asked)
    }

    #[tokio::test(start_paused = true)]
    async fn each_kind_is_probed_until_admitted() {
        let (probe, asked) = scripted(vec![
            api(503, UNKNOWN_KIND),
            api(503, UNKNOWN_KIND),
            Ok(()),
            Ok(()),
        ]);
        let out = wait_admitted(probe, |_| {}, LIMIT, Duration::from_millis(500)).await;
        assert_eq!(
            *asked.lock().unwrap(),
            ["Task", "Task", "Task", "HierarchicalFuture"]
        );
        assert_eq!(out[0].verdict, Verdict::Admitted);
        assert_eq!(out[0].probes, 3);
        assert_eq!(out[1].verdict, Verdict::Admitted);
        assert_eq!(out[1].probes, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_cannot_tell_is_not_repeated() {
        let (probe, asked) = scripted(vec![api(403, "forbidden"), Ok(())]);
        let out = wait_admitted(probe, |_| {}, LIMIT, Duration::from_millis(500)).await;
        assert_eq!(*asked.lock().unwrap(), ["Task", "HierarchicalFuture"]);
        assert!(matches!(out[0].verdict, Verdict::CannotTell(_)));
        assert_eq!(out[1].verdict, Verdict::Admitted);
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_at_the_limit() {
        // 10 s limit, a probe every 1 s: 11 refusals for the Task (at 0..=10
        // s, the last at the deadline), then one for the future, also at
        // the deadline, which is not waited on.
        let refusals = (0..12).map(|_| api(503, UNKNOWN_KIND)).collect();
        let (probe, asked) = scripted(refusals);
        let start = tokio::time::Instant::now();
        let out = wait_admitted(
            probe,
            |_| {},
            Duration::from_secs(10),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(asked.lock().unwrap().len(), 12);
        assert!(matches!(out[0].verdict, Verdict::NotYet(_)));
        assert_eq!(out[0].probes, 11);
        assert!(matches!(out[1].verdict, Verdict::NotYet(_)));
        assert_eq!(out[1].probes, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_is_announced_once_whatever_the_refusals() {
        // Four refusals of the Task, then two of the future: one notice,
        // with the first refusal's words.
        let mut answers: Vec<_> = (0..4).map(|_| api(503, UNKNOWN_KIND)).collect();
        answers.push(Ok(()));
        answers.extend((0..2).map(|_| api(503, "later")));
        answers.push(Ok(()));
        let (probe, _) = scripted(answers);
        let mut notices = Vec::new();
        let out = wait_admitted(
            probe,
            |why| notices.push(waiting_notice("jobs", why)),
            LIMIT,
            Duration::from_millis(500),
        )
        .await;
        assert_eq!(out[0].verdict, Verdict::Admitted);
        assert_eq!(out[1].verdict, Verdict::Admitted);
        assert_eq!(notices.len(), 1, "{notices:?}");
        assert!(notices[0].contains("Tasks and HierarchicalFutures in namespace jobs"));
        assert!(notices[0].contains("There can be a delay"));
        // Admitted at once: nothing to announce.
        let (probe, _) = scripted(vec![Ok(()), Ok(())]);
        let mut said = 0;
        wait_admitted(probe, |_| said += 1, LIMIT, Duration::from_millis(500)).await;
        assert_eq!(said, 0);
    }

    /// Serves 503 "kind not found" to every request, counting them.
    async fn refusing_api_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let asked = Arc::new(AtomicUsize::new(0));
        let count = asked.clone();
        let app = axum::Router::new().fallback(move || {
            let count = count.clone();
            async move {
                count.fetch_add(1, Ordering::SeqCst);
                let body = serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {},
                    "status": "Failure", "message": UNKNOWN_KIND,
                    "reason": "ServiceUnavailable", "code": 503,
                });
                (
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    [("content-type", "application/json")],
                    body.to_string(),
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), asked)
    }

    /// A log writer the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refused_probe_is_asked_once_and_logs_no_error() {
        let (url, asked) = refusing_api_server().await;
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let config = Config::new(url.parse().unwrap());
        let client = probe_client(&config).unwrap();
        let answer = dry_run_create(&client, "jobs", "Task").await;
        assert!(
            matches!(judge(&answer), Verdict::NotYet(m) if m.contains("There can be a delay")),
            "{answer:?}"
        );
        // The loop above does the asking again, not the client.
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
        let log = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
        assert!(!log.contains("ERROR"), "{log}");
    }

    #[test]
    fn the_probe_objects_are_valid_resources_of_each_kind() {
        let task: Task = probe_object().unwrap();
        assert_eq!(task.spec.call.function, "std.echo");
        assert_eq!(task.spec.pool, "default");
        let future: HierarchicalFuture = probe_object().unwrap();
        assert_eq!(future.spec.call.as_ref().unwrap().function, "std.echo");
        assert!(future.spec.map.is_none());
        for name in [&task.metadata, &future.metadata].map(|m| m.generate_name.clone()) {
            assert_eq!(name.as_deref(), Some("kontinuum-admission-probe-"));
        }
        assert_eq!(KINDS[0], <Task as kube::Resource>::kind(&()));
        assert_eq!(KINDS[1], <HierarchicalFuture as kube::Resource>::kind(&()));
    }

    #[test]
    fn the_probe_runs_where_the_policy_is_bound() {
        assert_eq!(probe_namespace(&[], "default"), "default");
        let watched = ["jobs".to_string(), "batch".to_string()];
        assert_eq!(probe_namespace(&watched, "default"), "jobs");
    }
}
