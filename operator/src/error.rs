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
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// `map_err(Error::kube("patch the status"))`.
    pub fn kube(doing: &'static str) -> impl FnOnce(kube::Error) -> Error {
        move |source| Error::Kube { doing, source }
    }

    /// A short, bounded label for metrics.
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
            Error::Engine(_) => "engine",
            Error::Join(_) => "join",
            Error::LeaseLost(_) => "lease_lost",
            Error::Serve(_) => "serve",
            Error::MetricsBind { .. } => "metrics",
            Error::Data { .. } => "data",
            Error::Invalid(_) => "invalid",
        }
    }
}
