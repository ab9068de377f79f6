//! Leader election on a `coordination.k8s.io/v1` Lease, with deadlines.
//!
//! Only the leader opens the store and serves (sled's file lock would refuse
//! a second opener on the same volume anyway, but on separate volumes two
//! leaders would run every task twice). The rules are those of client-go's
//! leader election:
//!
//! - A candidate takes a Lease over only after it has seen the same record
//!   (same resourceVersion) for a whole `leaseDurationSeconds` by its own
//!   clock, so clocks of different machines need not agree.
//! - The leader renews every [`Timings::retry_period`]; each attempt has a
//!   deadline, and when no renewal has succeeded for
//!   [`Timings::renew_deadline`] (counted from when the last good one was
//!   sent) it stops leading. A renewal that hangs (a partition) is a failed
//!   renewal, not a wait.
//! - Since `renew_deadline < lease_duration`, the leader has stopped before
//!   any candidate may take over: the last record it wrote landed after it
//!   was sent, and candidates wait a whole lease duration after seeing it.
//!
//! Writes carry the resourceVersion they read, so two candidates cannot both
//! take an expired Lease: the loser gets a 409 and reads again. The decision
//! is [`decide`], a pure function; [`Elector`] does the I/O.

use crate::error::Error;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The three durations of leader election (client-go's names and defaults:
/// 15 s, 10 s, 2 s).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timings {
    /// How long a candidate waits, after it last saw the Lease change,
    /// before taking it over.
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and a candidate looks.
    pub retry_period: Duration,
}

impl Timings {
    /// Refuses timings that would let two replicas lead at once, or make
    /// the leader give up between two renewals.
    pub fn check(&self) -> Result<(), String> {
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "--renew-deadline ({:?}) must be shorter than --lease-duration ({:?}): a leader that cannot renew must stop before another replica may take the Lease",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period * 2 > self.renew_deadline {
            return Err(format!(
                "--retry-period ({:?}) must be at most half of --renew-deadline ({:?}), so that a leader tries to renew at least twice before it gives up",
                self.retry_period, self.renew_deadline
            ));
        }
        if self.lease_duration < Duration::from_secs(1) || self.retry_period.is_zero() {
            return Err(
                "--lease-duration must be at least 1s and --retry-period more than 0s".into(),
            );
        }
        Ok(())
    }
}

/// What to do with the Lease as it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No Lease yet: create it holding it.
    Create,
    /// Free, or unchanged for a whole lease duration: take it over.
    TakeOver,
    /// Ours: renew it.
    Renew,
    /// Someone else's and still live: look again later.
    Wait,
}

/// `unchanged_for`: how long this candidate has seen the Lease at its
/// present resourceVersion (zero when it just changed).
pub fn decide(spec: Option<&LeaseSpec>, me: &str, unchanged_for: Duration) -> LeaseDecision {
    let Some(spec) = spec else {
        return LeaseDecision::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == me {
        return LeaseDecision::Renew;
    }
    if holder.is_empty() {
        return LeaseDecision::TakeOver;
    }
    let lasts = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(15).max(1) as u64);
    if unchanged_for >= lasts {
        LeaseDecision::TakeOver
    } else {
        LeaseDecision::Wait
    }
}

/// The Lease spec a holder writes.
fn held_spec(
    previous: Option<&LeaseSpec>,
    me: &str,
    duration: Duration,
    takeover: bool,
) -> LeaseSpec {
    let now = MicroTime(Timestamp::now());
    let transitions = previous.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(duration.as_secs().max(1) as i32),
        acquire_time: if takeover {
            Some(now.clone())
        } else {
            previous
                .and_then(|s| s.acquire_time.clone())
                .or(Some(now.clone()))
        },
        renew_time: Some(now),
        lease_transitions: Some(if takeover && previous.is_some() {
            transitions + 1
        } else {
            transitions
        }),
        ..LeaseSpec::default()
    }
}

/// The Lease version a candidate last saw and since when.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Observation {
    version: String,
    since: Instant,
}

/// What one look at the Lease came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Look {
    /// We hold it: written by a request sent no earlier than this.
    Held(Instant),
    /// Someone else does.
    Other,
}

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    timings: Timings,
    owner: Option<OwnerReference>,
    observed: Mutex<Option<Observation>>,
}

/// The pod this process runs in as the owner of the Lease it holds (from
/// `POD_NAME` and `POD_UID`, which the chart passes from the downward API):
/// when the pod goes — `helm uninstall`, or a crash and a deleted pod — the
/// garbage collector deletes the Lease with it, even where the operator
/// could not (its Role may be gone before it stops). None out of a pod.
pub fn owner_pod() -> Option<OwnerReference> {
    let name = std::env::var("POD_NAME").ok().filter(|n| !n.is_empty())?;
    let uid = std::env::var("POD_UID").ok().filter(|u| !u.is_empty())?;
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name,
        uid,
        ..OwnerReference::default()
    })
}

impl Elector {
    pub fn new(
        api: Api<Lease>,
        name: String,
        identity: String,
        timings: Timings,
        owner: Option<OwnerReference>,
    ) -> Elector {
        Elector {
            api,
            name,
            identity,
            timings,
            owner,
            observed: Mutex::new(None),
        }
    }

    fn owners(&self) -> Option<Vec<OwnerReference>> {
        self.owner.clone().map(|o| vec![o])
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// How long the Lease has been seen at `version` (zero if it just
    /// changed, and then remembered as changed now).
    fn unchanged_for(&self, version: &str, now: Instant) -> Duration {
        let mut observed = self.observed.lock().unwrap_or_else(|p| p.into_inner());
        match observed.as_ref() {
            Some(o) if o.version == version => now.duration_since(o.since),
            _ => {
                *observed = Some(Observation {
                    version: version.to_string(),
                    since: now,
                });
                Duration::ZERO
            }
        }
    }

    /// One look at the Lease, writing it when we may hold it.
    async fn look(&self) -> Result<Look, Error> {
        let sent = Instant::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(Error::kube("read the Lease"))?;
        let version = current
            .as_ref()
            .and_then(|l| l.metadata.resource_version.clone())
            .unwrap_or_default();
        let unchanged_for = self.unchanged_for(&version, Instant::now());
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(spec, &self.identity, unchanged_for);
        let write = match decision {
            LeaseDecision::Wait => return Ok(Look::Other),
            LeaseDecision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        owner_references: self.owners(),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held_spec(
                        None,
                        &self.identity,
                        self.timings.lease_duration,
                        true,
                    )),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            LeaseDecision::TakeOver | LeaseDecision::Renew => {
                let Some(mut lease) = current else {
                    return Ok(Look::Other);
                };
                let takeover = decision == LeaseDecision::TakeOver;
                // The holder's pod owns the Lease (a predecessor's pod, once
                // deleted, would take it along).
                if let Some(owners) = self.owners() {
                    lease.metadata.owner_references = Some(owners);
                }
                lease.spec = Some(held_spec(
                    lease.spec.as_ref(),
                    &self.identity,
                    self.timings.lease_duration,
                    takeover,
                ));
                // replace carries metadata.resourceVersion: a concurrent
                // writer makes this fail with 409 instead of both winning.
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
        };
        match write {
            Ok(()) => Ok(Look::Held(sent)),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Look::Other),
            Err(e) => Err(Error::kube("write the Lease")(e)),
        }
    }

    /// Waits until this replica holds the Lease; returns when the holding
    /// write was sent (the renewal deadline counts from then).
    pub async fn acquire(&self) -> Instant {
        let mut announced = false;
        loop {
            let attempt = tokio::time::timeout(self.timings.renew_deadline, self.look()).await;
            match attempt {
                Ok(Ok(Look::Held(sent))) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "leading");
                    return sent;
                }
                Ok(Ok(Look::Other)) => {
                    if !announced {
                        tracing::info!(lease = %self.name, "another replica leads; waiting for the Lease");
                        announced = true;
                    }
                }
                Ok(Err(e)) => tracing::warn!("leader election: {e}"),
                Err(_) => tracing::warn!(
                    "leader election: the API server did not answer within {:?}",
                    self.timings.renew_deadline
                ),
            }
            tokio::time::sleep(self.timings.retry_period).await;
        }
    }

    /// Renews the Lease until it is lost, and says why: another replica
    /// holds it, or no renewal succeeded for the renew deadline (counted
    /// from `last_sent`, when the last good one was sent). Returns no
    /// later than that deadline, so the caller stops leading in time.
    pub async fn keep(&self, mut last_sent: Instant) -> Error {
        loop {
            let deadline = last_sent + self.timings.renew_deadline;
            tokio::time::sleep_until((Instant::now() + self.timings.retry_period).min(deadline))
                .await;
            if Instant::now() >= deadline {
                return self.lost_after(None);
            }
            match tokio::time::timeout_at(deadline, self.look()).await {
                Ok(Ok(Look::Held(sent))) => last_sent = sent,
                Ok(Ok(Look::Other)) => {
                    return Error::LeaseLost(format!("another replica holds Lease {}", self.name));
                }
                Ok(Err(e)) => {
                    tracing::warn!("renewing the Lease: {e}");
                    if Instant::now() >= deadline {
                        return self.lost_after(Some(e));
                    }
                }
                Err(_) => return self.lost_after(None),
            }
        }
    }

    fn lost_after(&self, last: Option<Error>) -> Error {
        let why = match last {
            Some(e) => format!(": {e}"),
            None => " (the API server did not answer in time)".into(),
        };
        Error::LeaseLost(format!(
            "could not renew Lease {} for {:?}{why}",
            self.name, self.timings.renew_deadline
        ))
    }

    /// Hands the Lease back on a clean shutdown, so a successor need not
    /// wait for it to expire: deletes it (a successor creates it anew), so
    /// that an uninstalled operator leaves no Lease behind. The
    /// preconditions make the delete miss if anyone took the Lease since.
    pub async fn release(&self) {
        let Ok(Some(lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let holder = lease
            .spec
            .as_ref()
            .and_then(|s| s.holder_identity.as_deref());
        if holder != Some(self.identity.as_str()) {
            return;
        }
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: lease.metadata.uid.clone(),
                resource_version: lease.metadata.resource_version.clone(),
            }),
            ..DeleteParams::default()
        };
        if let Err(e) = self.api.delete(&self.name, &params).await {
            tracing::warn!("releasing the Lease: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_millisecond(0).unwrap())),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    const SEC: Duration = Duration::from_secs(1);

    #[test]
    fn absent_lease_is_created() {
        assert_eq!(decide(None, "a", Duration::ZERO), LeaseDecision::Create);
    }

    #[test]
    fn own_lease_is_renewed_whatever_its_age() {
        assert_eq!(
            decide(Some(&spec("a", 15)), "a", 100 * SEC),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn another_holders_lease_is_taken_only_after_a_whole_duration_unchanged() {
        let s = spec("b", 15);
        assert_eq!(decide(Some(&s), "a", Duration::ZERO), LeaseDecision::Wait);
        assert_eq!(decide(Some(&s), "a", 14 * SEC), LeaseDecision::Wait);
        assert_eq!(decide(Some(&s), "a", 15 * SEC), LeaseDecision::TakeOver);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let released = LeaseSpec {
            holder_identity: None,
            ..spec("b", 15)
        };
        assert_eq!(
            decide(Some(&released), "a", Duration::ZERO),
            LeaseDecision::TakeOver
        );
    }

    #[test]
    fn takeover_counts_a_transition_and_renewal_keeps_the_acquire_time() {
        let before = LeaseSpec {
            lease_transitions: Some(3),
            acquire_time: Some(MicroTime(Timestamp::from_millisecond(5).unwrap())),
            ..spec("b", 15)
        };
        let taken = held_spec(Some(&before), "a", Duration::from_secs(15), true);
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        let renewed = held_spec(Some(&taken), "a", Duration::from_secs(15), false);
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }

    #[test]
    fn timings_that_could_give_two_leaders_are_refused() {
        let ok = Timings {
            lease_duration: 15 * SEC,
            renew_deadline: 10 * SEC,
            retry_period: 2 * SEC,
        };
        assert_eq!(ok.check(), Ok(()));
        let equal = Timings {
            renew_deadline: 15 * SEC,
            ..ok
        };
        assert!(equal.check().unwrap_err().contains("--renew-deadline"));
        let slow_retry = Timings {
            retry_period: 6 * SEC,
            ..ok
        };
        assert!(slow_retry.check().unwrap_err().contains("--retry-period"));
    }

    #[tokio::test(start_paused = true)]
    async fn an_observation_counts_from_the_first_sight_of_a_version() {
        let client = kube::Client::new(
            tower::service_fn(|_req: http::Request<kube::client::Body>| async {
                Err::<http::Response<kube::client::Body>, std::io::Error>(std::io::Error::other(
                    "no API server in this test",
                ))
            }),
            "default",
        );
        let elector = Elector::new(
            Api::namespaced(client, "default"),
            "lease".into(),
            "a".into(),
            Timings {
                lease_duration: 15 * SEC,
                renew_deadline: 10 * SEC,
                retry_period: 2 * SEC,
            },
            None,
        );
        let t0 = Instant::now();
        assert_eq!(elector.unchanged_for("1", t0), Duration::ZERO);
        assert_eq!(elector.unchanged_for("1", t0 + 5 * SEC), 5 * SEC);
        assert_eq!(elector.unchanged_for("2", t0 + 6 * SEC), Duration::ZERO);
        assert_eq!(elector.unchanged_for("2", t0 + 21 * SEC), 15 * SEC);
    }

    /// A scripted API server: the Lease held by "a" answers GETs and PUTs
    /// until `hang` is set; from then on no request is ever answered.
    fn scripted(hang: std::sync::Arc<std::sync::atomic::AtomicBool>) -> kube::Client {
        use std::sync::atomic::{AtomicU64, Ordering};
        let version = std::sync::Arc::new(AtomicU64::new(1));
        let service = tower::service_fn(move |req: http::Request<kube::client::Body>| {
            let (hang, version) = (hang.clone(), version.clone());
            async move {
                if hang.load(Ordering::SeqCst) {
                    std::future::pending::<()>().await;
                }
                let v = if req.method() == http::Method::PUT {
                    version.fetch_add(1, Ordering::SeqCst) + 1
                } else {
                    version.load(Ordering::SeqCst)
                };
                let lease = serde_json::json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": "lease", "namespace": "default", "resourceVersion": v.to_string()},
                    "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15},
                });
                let body = serde_json::to_vec(&lease).unwrap_or_default();
                let mut response = http::Response::new(kube::client::Body::from(body));
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, std::io::Error>(response)
            }
        });
        kube::Client::new(service, "default")
    }

    fn timings() -> Timings {
        Timings {
            lease_duration: 15 * SEC,
            renew_deadline: 10 * SEC,
            retry_period: 2 * SEC,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_leader_whose_renewals_hang_stops_by_the_renew_deadline() {
        let hang = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let elector = Elector::new(
            Api::namespaced(scripted(hang.clone()), "default"),
            "lease".into(),
            "a".into(),
            timings(),
            None,
        );
        let start = Instant::now();
        let sent = elector.acquire().await;
        // Renewals go through for 7 s, then the API server stops answering.
        let flip = {
            let hang = hang.clone();
            tokio::spawn(async move {
                tokio::time::sleep(7 * SEC).await;
                hang.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        };
        let lost = elector.keep(sent).await;
        let at = start.elapsed();
        flip.await.unwrap();
        assert!(matches!(lost, Error::LeaseLost(_)), "{lost}");
        // The last good renewal was sent at 6 s: it leads until 16 s at
        // most, and not a moment past the renew deadline after it.
        assert!(at > 10 * SEC && at <= 16 * SEC, "stopped leading at {at:?}");
        assert!(lost.to_string().contains("did not answer"), "{lost}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_candidate_whose_reads_hang_keeps_waiting_and_never_leads() {
        let hang = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let elector = Elector::new(
            Api::namespaced(scripted(hang), "default"),
            "lease".into(),
            "b".into(),
            timings(),
            None,
        );
        let outcome = tokio::time::timeout(120 * SEC, elector.acquire()).await;
        assert!(
            outcome.is_err(),
            "a candidate led without reading the Lease"
        );
    }
}
