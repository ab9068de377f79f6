//! The operator's command line. Every flag can also come from a
//! `KONTINUUM_*` environment variable, since containers configure by env.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A duration written as in manifests (`500ms`, `1s`, `5m`).
pub(crate) fn duration(s: &str) -> Result<Duration, String> {
    kontinuum_api::duration::parse_duration(s).map_err(|e| e.to_string())
}

#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "kontinuum-operator",
    version,
    about = "Kontinuum's operator: the engine, the worker API and the Kubernetes controllers in one process",
    long_about = "Kontinuum's operator: the engine (a sled store under --data), the worker API \
                  that kontinuum-worker processes lease from, and the controllers that turn \
                  Task, HierarchicalFuture and WorkerPool resources into engine work and \
                  write their status. Runs in a pod (in-cluster config) or anywhere with a \
                  KUBECONFIG. `kontinuum-operator uninstall --help`: the chart's pre-delete \
                  hook, which deletes the release's resources before the operator goes."
)]
pub struct Flags {
    /// The engine's store (a directory; on a PersistentVolume in a cluster).
    #[arg(long, env = "KONTINUUM_DATA", value_name = "DIR")]
    pub data: PathBuf,
    /// The worker API's address.
    #[arg(
        long,
        env = "KONTINUUM_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:7070"
    )]
    pub listen: SocketAddr,
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(
        long,
        env = "KONTINUUM_METRICS_LISTEN",
        value_name = "ADDR",
        default_value = "0.0.0.0:9090"
    )]
    pub metrics_listen: SocketAddr,
    /// Watch only these namespaces (repeat the flag, or a comma-separated
    /// list in the variable); default: every namespace.
    #[arg(
        long = "namespace",
        env = "KONTINUUM_NAMESPACES",
        value_name = "NS",
        value_delimiter = ','
    )]
    pub namespaces: Vec<String>,
    /// A file holding a shared bearer token for workers and the CLI
    /// (laptops and tests; in a cluster workers present ServiceAccount tokens).
    #[arg(long, env = "KONTINUUM_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Take a Lease before opening the store, so one replica at a time runs.
    #[arg(
        long,
        env = "KONTINUUM_LEADER_ELECT",
        value_name = "BOOL",
        default_value_t = true,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub leader_elect: bool,
    /// The Lease's name.
    #[arg(
        long,
        env = "KONTINUUM_LEASE_NAME",
        value_name = "NAME",
        default_value = "kontinuum-operator"
    )]
    pub lease_name: String,
    /// The Lease's namespace; default: the pod's namespace (POD_NAMESPACE),
    /// else the kubeconfig's, else "default".
    #[arg(long, env = "KONTINUUM_LEASE_NAMESPACE", value_name = "NS")]
    pub lease_namespace: Option<String>,
    /// How long a candidate waits, after it last saw the Lease change,
    /// before it takes the Lease over.
    #[arg(long, env = "KONTINUUM_LEASE_DURATION", value_name = "DURATION", default_value = "15s", value_parser = duration)]
    pub lease_duration: Duration,
    /// How long the leader keeps leading without a successful renewal of
    /// the Lease; shorter than --lease-duration, so it has stopped before
    /// anyone else may take over.
    #[arg(long, env = "KONTINUUM_RENEW_DEADLINE", value_name = "DURATION", default_value = "10s", value_parser = duration)]
    pub renew_deadline: Duration,
    /// How often the leader renews the Lease and a candidate looks at it.
    #[arg(long, env = "KONTINUUM_RETRY_PERIOD", value_name = "DURATION", default_value = "2s", value_parser = duration)]
    pub retry_period: Duration,
    /// This replica's name in the Lease; default: the pod's name in a pod,
    /// else the host's name and a digest of --data (the same after a
    /// restart, so a restarted operator takes its own Lease back at once).
    #[arg(long, env = "KONTINUUM_IDENTITY", value_name = "NAME")]
    pub identity: Option<String>,
    /// After the Lease is lost or the store failed, start over in place (a
    /// candidate again, the store reopened) instead of exiting with an
    /// error. Default: true out of a pod; false in a pod, where the kubelet
    /// restarts the container (and its liveness probe fails with the store).
    #[arg(
        long,
        env = "KONTINUUM_RESTART_IN_PLACE",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub restart_in_place: Option<bool>,
    /// At most one status patch per object per this interval.
    #[arg(long, env = "KONTINUUM_STATUS_INTERVAL", value_name = "DURATION", default_value = "1s", value_parser = duration)]
    pub status_interval: Duration,
    /// The image of WorkerPool Deployments' workers.
    #[arg(long, env = "KONTINUUM_WORKER_IMAGE", value_name = "IMAGE")]
    pub worker_image: Option<String>,
    /// The URL workers use to reach the worker API (the operator's Service in
    /// a cluster, its own address when it runs outside).
    #[arg(long, env = "KONTINUUM_WORKER_SERVER", value_name = "URL")]
    pub worker_server: Option<String>,
}

impl Flags {
    /// The namespace of the Lease, resolved as documented on the flag.
    pub fn lease_namespace(&self, kubeconfig_namespace: &str) -> String {
        self.lease_namespace
            .clone()
            .or_else(|| {
                std::env::var("POD_NAMESPACE")
                    .ok()
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| kubeconfig_namespace.to_string())
    }

    /// The leader election's durations (checked by [`Timings::check`]).
    pub fn timings(&self) -> crate::leader::Timings {
        crate::leader::Timings {
            lease_duration: self.lease_duration,
            renew_deadline: self.renew_deadline,
            retry_period: self.retry_period,
        }
    }

    /// Whether to start over in place after losing the Lease or the store.
    pub fn restarts_in_place(&self) -> bool {
        self.restart_in_place
            .unwrap_or_else(|| pod_name().is_none())
    }

    /// This replica's name in the Lease, as documented on `--identity`.
    pub fn identity(&self) -> String {
        if let Some(id) = self.identity.clone().filter(|i| !i.is_empty()) {
            return id;
        }
        if let Some(pod) = pod_name() {
            return pod;
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        host_identity(&host, &self.data)
    }
}

fn pod_name() -> Option<String> {
    std::env::var("POD_NAME").ok().filter(|p| !p.is_empty())
}

/// `HOST-` and 12 hex digits of the SHA-256 of the store's absolute path:
/// one identity per store directory of a host, the same across restarts.
/// Two processes on one store are kept apart by the store's own lock
/// (run.rs holds `operator.lock` in it before the Lease).
pub fn host_identity(host: &str, data: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let absolute = std::path::absolute(data).unwrap_or_else(|_| data.to_path_buf());
    let digest = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("{host}-{hex}")
}

#[cfg(test)]
mod tests {
    use super::Flags;
    use clap::Parser;
    use std::time::Duration;

    #[test]
    fn defaults_match_the_documented_command_line() {
        let f = Flags::try_parse_from(["kontinuum-operator", "--data", "/tmp/op"]).unwrap();
        assert_eq!(f.listen.to_string(), "0.0.0.0:7070");
        assert_eq!(f.metrics_listen.to_string(), "0.0.0.0:9090");
        assert!(f.leader_elect);
        assert_eq!(f.status_interval, Duration::from_secs(1));
        assert!(f.namespaces.is_empty());
    }

    #[test]
    fn leader_elect_takes_an_optional_value_and_durations_parse_like_manifests() {
        let f = Flags::try_parse_from([
            "kontinuum-operator",
            "--data",
            "d",
            "--leader-elect=false",
            "--status-interval",
            "250ms",
            "--namespace",
            "a",
            "--namespace",
            "b",
        ])
        .unwrap();
        assert!(!f.leader_elect);
        assert_eq!(f.status_interval, Duration::from_millis(250));
        assert_eq!(f.namespaces, ["a", "b"]);
        let bare = Flags::try_parse_from(["kontinuum-operator", "--data", "d", "--leader-elect"]);
        assert!(bare.unwrap().leader_elect);
        let bad = Flags::try_parse_from([
            "kontinuum-operator",
            "--data",
            "d",
            "--status-interval",
            "soon",
        ]);
        let message = bad.unwrap_err().to_string();
        assert!(message.contains("--status-interval"), "{message}");
    }

    #[test]
    fn the_identity_out_of_a_pod_is_the_host_and_the_store_and_stays() {
        let a = super::host_identity("laptop", std::path::Path::new("/var/lib/k/a"));
        assert_eq!(
            a,
            super::host_identity("laptop", std::path::Path::new("/var/lib/k/a"))
        );
        assert_ne!(
            a,
            super::host_identity("laptop", std::path::Path::new("/var/lib/k/b"))
        );
        assert!(
            a.starts_with("laptop-") && a.len() == "laptop-".len() + 12,
            "{a}"
        );
        let f = Flags::try_parse_from(["kontinuum-operator", "--data", "d", "--identity", "me"])
            .unwrap();
        assert_eq!(f.identity(), "me");
    }

    #[test]
    fn leader_election_timings_default_to_client_go_s() {
        let f = Flags::try_parse_from(["kontinuum-operator", "--data", "d"]).unwrap();
        let t = f.timings();
        assert_eq!(t.lease_duration, Duration::from_secs(15));
        assert_eq!(t.renew_deadline, Duration::from_secs(10));
        assert_eq!(t.retry_period, Duration::from_secs(2));
        assert_eq!(t.check(), Ok(()));
        let f = Flags::try_parse_from([
            "kontinuum-operator",
            "--data",
            "d",
            "--restart-in-place=false",
        ])
        .unwrap();
        assert!(!f.restarts_in_place());
    }

    #[test]
    fn data_is_required() {
        let err = Flags::try_parse_from(["kontinuum-operator"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--data"), "{err}");
    }
}
