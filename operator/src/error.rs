//! The operator's errors, each with what was being done.

use kontinuum_engine::EngineError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot {doing}: {source}")]
    Kube {
        doing: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("kubernetes client configuration: {0}")]
    Config(String),
    #[error("engine: {0}")]
    Engine(#[from] EngineError),
    #[error("the engine task stopped: {0}")]
    Join(#[from] tokio::task::JoinError),
    #[error("{0}")]
    LeaseLost(String),
    #[error("the store failed: {0}")]
    StoreFailed(String),
    #[error("worker API: {0}")]
    Serve(#[from] kontinuum_server::ServeError),
    #[error("cannot bind the metrics listener {addr}: {source}")]
    MetricsBind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use the store directory {path}: {source}")]
    Data {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot register the worker API's metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// `map_err(Error::kube("patch the status"))`.
    pub fn kube(doing: &'static str) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Kube { doing, source }
    }

    /// Every value [`Error::reason`] gives.
    pub const REASONS: [&'static str; 13] = [
        "conflict",
        "not_found",
        "kube",
        "config",
        "engine",
        "join",
        "lease_lost",
        "store_failed",
        "serve",
        "metrics",
        "data",
        "invalid",
        "registry",
    ];

    /// After this error, how long an operator that restarts in place
    /// (`--restart-in-place`) waits before it starts over; None for errors
    /// a restart would not cure (a bad flag, say), which end the process.
    pub fn restart_delay(&self) -> Option<std::time::Duration> {
        match self {
            // Another replica leads now: be a candidate again at once. The
            // store failed while running: the failing probes and statuses
            // have had their grace (run.rs), reopen it now.
            Error::LeaseLost(_) | Error::StoreFailed(_) => Some(std::time::Duration::ZERO),
            // The store failed again as it opened (no room yet, an I/O
            // error), or another process still holds it: try again now and
            // then, as a kubelet would restart a pod.
            Error::Engine(
                EngineError::StoreFailed(_) | EngineError::Store(_) | EngineError::Locked { .. },
            ) => Some(std::time::Duration::from_secs(10)),
            _ => None,
        }
    }

    /// A short, bounded label for metrics (one of [`Error::REASONS`]).
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } if s.code == 409 => "conflict",
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } if s.code == 404 => "not_found",
            Error::Kube { .. } => "kube",
            Error::Config(_) => "config",
            Error::StoreFailed(_) | Error::Engine(EngineError::StoreFailed(_)) => "store_failed",
            Error::Engine(_) => "engine",
            Error::Join(_) => "join",
            Error::LeaseLost(_) => "lease_lost",
            Error::Serve(_) => "serve",
            Error::MetricsBind { .. } => "metrics",
            Error::Data { .. } => "data",
            Error::Invalid(_) => "invalid",
            Error::Metrics(_) => "registry",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_is_listed() {
        let io = || std::io::Error::other("x");
        let errors = [
            Error::Config(String::new()),
            Error::Engine(EngineError::StaleLease),
            Error::LeaseLost(String::new()),
            Error::StoreFailed(String::new()),
            Error::MetricsBind {
                addr: ([127, 0, 0, 1], 0).into(),
                source: io(),
            },
            Error::Data {
                path: "/".into(),
                source: io(),
            },
            Error::Invalid(String::new()),
            Error::Metrics(prometheus::Error::Msg(String::new())),
            Error::Kube {
                doing: "x",
                source: kube::Error::LinesCodecMaxLineLengthExceeded,
            },
        ];
        for e in errors {
            assert!(Error::REASONS.contains(&e.reason()), "{}", e.reason());
        }
    }
}
