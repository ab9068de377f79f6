//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Only the leader opens the store (sled's file lock would refuse a second
//! opener on the same volume anyway, but on separate volumes two leaders
//! would run every task twice). The decision of what to do with the Lease
//! as read is [`decide`], a pure function; [`Elector`] does the I/O. Writes
//! carry the resourceVersion they read, so two candidates cannot both take
//! an expired Lease: the loser gets a 409 and reads again.

use crate::error::Error;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, Preconditions};
use std::time::Duration;

/// What to do with the Lease as it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LeaseDecision {
    /// No Lease yet: create it holding it.
    Create,
    /// Free or expired: take it over (one more transition).
    TakeOver,
    /// Ours: renew it.
    Renew,
    /// Someone else's and still valid: look again after this long.
    Wait(Duration),
}

/// `now` and the Lease's times are milliseconds since the epoch.
pub fn decide(spec: Option<&LeaseSpec>, me: &str, now_ms: i64) -> LeaseDecision {
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
    let renewed = spec
        .renew_time
        .as_ref()
        .or(spec.acquire_time.as_ref())
        .map(|t| t.0.as_millisecond())
        .unwrap_or(0);
    let lasts = i64::from(spec.lease_duration_seconds.unwrap_or(15).max(1)) * 1000;
    let expires = renewed.saturating_add(lasts);
    if now_ms >= expires {
        LeaseDecision::TakeOver
    } else {
        // Poll a little after it would expire, but at least every second so
        // a released Lease is noticed quickly.
        let left = (expires - now_ms) as u64;
        LeaseDecision::Wait(Duration::from_millis(left.clamp(100, 1000)))
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

pub struct Elector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
    owner: Option<OwnerReference>,
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
        duration: Duration,
        owner: Option<OwnerReference>,
    ) -> Elector {
        Elector {
            api,
            name,
            identity,
            duration,
            owner,
        }
    }

    fn owners(&self) -> Option<Vec<OwnerReference>> {
        self.owner.clone().map(|o| vec![o])
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// One look at the Lease: Ok(None) when we hold it now, Ok(Some(wait))
    /// when someone else does.
    async fn try_hold(&self) -> Result<Option<Duration>, Error> {
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(Error::kube("read the Lease"))?;
        let now = Timestamp::now().as_millisecond();
        let spec = current.as_ref().and_then(|l| l.spec.as_ref());
        let decision = decide(spec, &self.identity, now);
        let write = match decision {
            LeaseDecision::Wait(d) => return Ok(Some(d)),
            LeaseDecision::Create => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        owner_references: self.owners(),
                        ..ObjectMeta::default()
                    },
                    spec: Some(held_spec(None, &self.identity, self.duration, true)),
                };
                self.api
                    .create(&PostParams::default(), &lease)
                    .await
                    .map(|_| ())
            }
            LeaseDecision::TakeOver | LeaseDecision::Renew => {
                let Some(mut lease) = current else {
                    return Ok(Some(Duration::from_millis(100)));
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
                    self.duration,
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
            Ok(()) => Ok(None),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Some(Duration::from_millis(200))),
            Err(e) => Err(Error::kube("write the Lease")(e)),
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) -> Result<(), Error> {
        let mut announced = false;
        loop {
            match self.try_hold().await {
                Ok(None) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "leading");
                    return Ok(());
                }
                Ok(Some(wait)) => {
                    if !announced {
                        tracing::info!(lease = %self.name, "another replica leads; waiting for the Lease");
                        announced = true;
                    }
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    tracing::warn!("leader election: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Renews the Lease until it is lost: returns when another replica took
    /// it or renewal failed for two thirds of its duration. The caller exits.
    pub async fn keep(&self) -> Error {
        let every = self.duration / 3;
        let give_up_after = self.duration * 2 / 3;
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match self.try_hold().await {
                Ok(None) => last_ok = tokio::time::Instant::now(),
                Ok(Some(_)) => {
                    return Error::LeaseLost(format!("another replica holds Lease {}", self.name));
                }
                Err(e) => {
                    tracing::warn!("renewing the Lease: {e}");
                    if last_ok.elapsed() >= give_up_after {
                        return Error::LeaseLost(format!(
                            "could not renew Lease {} for {:?}: {e}",
                            self.name, give_up_after
                        ));
                    }
                }
            }
        }
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

    fn spec(holder: &str, renewed_ms: i64, seconds: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(Timestamp::from_millisecond(renewed_ms).unwrap())),
            lease_duration_seconds: Some(seconds),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn absent_lease_is_created() {
        assert_eq!(decide(None, "a", 0), LeaseDecision::Create);
    }

    #[test]
    fn own_lease_is_renewed_even_when_expired() {
        assert_eq!(
            decide(Some(&spec("a", 0, 15)), "a", 1_000_000),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn another_holders_valid_lease_is_waited_for() {
        let s = spec("b", 100_000, 15);
        match decide(Some(&s), "a", 110_000) {
            LeaseDecision::Wait(d) => assert!(d <= Duration::from_secs(1)),
            other => panic!("expected a wait, got {other:?}"),
        }
    }

    #[test]
    fn expired_or_released_lease_is_taken_over() {
        let s = spec("b", 100_000, 15);
        assert_eq!(decide(Some(&s), "a", 115_000), LeaseDecision::TakeOver);
        let released = LeaseSpec {
            holder_identity: None,
            ..spec("b", 100_000, 15)
        };
        assert_eq!(
            decide(Some(&released), "a", 100_001),
            LeaseDecision::TakeOver
        );
    }

    #[test]
    fn takeover_counts_a_transition_and_renewal_keeps_the_acquire_time() {
        let before = LeaseSpec {
            lease_transitions: Some(3),
            acquire_time: Some(MicroTime(Timestamp::from_millisecond(5).unwrap())),
            ..spec("b", 100_000, 15)
        };
        let taken = held_spec(Some(&before), "a", Duration::from_secs(15), true);
        assert_eq!(taken.lease_transitions, Some(4));
        assert_eq!(taken.holder_identity.as_deref(), Some("a"));
        let renewed = held_spec(Some(&taken), "a", Duration::from_secs(15), false);
        assert_eq!(renewed.lease_transitions, Some(4));
        assert_eq!(renewed.acquire_time, taken.acquire_time);
    }
}
