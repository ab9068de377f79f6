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
//! user's first `kubectl apply` after them is admitted. The kube client
//! itself retries a 503 with a backoff, so one probe may take seconds; the
//! loop here asks again when the client has given up.

use kontinuum_api::{HierarchicalFuture, Task};
use kube::api::PostParams;
use kube::{Api, Client};
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

/// Probes each kind until it is admitted, cannot tell, or `limit` has
/// passed since the start (then the last `NotYet` is returned). `probe`
/// makes one dry-run create of the kind it is given.
pub async fn wait_admitted<F, Fut>(mut probe: F, limit: Duration, pause: Duration) -> Vec<Outcome>
where
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = Result<(), kube::Error>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    let mut outcomes = Vec::new();
    for kind in KINDS {
        let mut probes = 0;
        let verdict = loop {
            probes += 1;
            let verdict = judge(&probe(kind).await);
            match &verdict {
                Verdict::NotYet(why) if tokio::time::Instant::now() < deadline => {
                    if probes == 1 {
                        tracing::info!(
                            kind,
                            "the API server does not admit creates yet: {why}; waiting before reporting ready"
                        );
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
    Api::<K>::namespaced(client.clone(), ns)
        .create(&params, &object)
        .await?;
    Ok(())
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
        let out = wait_admitted(probe, LIMIT, Duration::from_millis(500)).await;
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
        let out = wait_admitted(probe, LIMIT, Duration::from_millis(500)).await;
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
        let out = wait_admitted(probe, Duration::from_secs(10), Duration::from_secs(1)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        assert_eq!(asked.lock().unwrap().len(), 12);
        assert!(matches!(out[0].verdict, Verdict::NotYet(_)));
        assert_eq!(out[0].probes, 11);
        assert!(matches!(out[1].verdict, Verdict::NotYet(_)));
        assert_eq!(out[1].probes, 1);
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
