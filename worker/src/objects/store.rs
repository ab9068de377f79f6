//! One client per store a worker reads (bucket, endpoint, region), kept for
//! the worker's life so leaves reuse its connections.

use super::url;
use crate::error::FnError;
use kontinuum_api::work::StoreRef;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{BackoffConfig, RetryConfig};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

static CLIENTS: OnceLock<Mutex<HashMap<StoreRef, Arc<AmazonS3>>>> = OnceLock::new();

/// The client for `store`, built on first use.
pub(super) fn client(store: &StoreRef) -> Result<Arc<AmazonS3>, FnError> {
    let clients = CLIENTS.get_or_init(Default::default);
    if let Some(c) = clients.lock().get(store) {
        return Ok(c.clone());
    }
    let built = Arc::new(build(store, &|name| std::env::var(name).ok())?);
    clients.lock().insert(store.clone(), built.clone());
    Ok(built)
}

/// Credentials a worker may be given: keys (a Secret), a web identity
/// token (EKS, and other clusters' workload identity) or a container
/// credentials endpoint (ECS, EKS Pod Identity).
const CREDENTIAL_VARIABLES: [&str; 4] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
];

fn build(store: &StoreRef, env: &dyn Fn(&str) -> Option<String>) -> Result<AmazonS3, FnError> {
    // Off AWS (an endpoint of its own) the instance metadata service that
    // the client falls back to does not exist: say what is missing at once
    // instead of timing out against it.
    if store.endpoint.is_some() && !CREDENTIAL_VARIABLES.iter().any(|v| env(v).is_some()) {
        return Err(FnError::permanent(format!(
            "{}: the worker has no credentials for the store; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the WorkerPool's template (from a Secret) or the worker's environment",
            url(store, "")
        )));
    }
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(&store.bucket)
        // A store that does not answer fails the attempt in about half a
        // minute; the task's retries take it from there.
        .with_retry(RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        });
    if let Some(region) = &store.region {
        builder = builder.with_region(region);
    } else if env("AWS_REGION").is_none() && env("AWS_DEFAULT_REGION").is_none() {
        builder = builder.with_region("us-east-1");
    }
    if let Some(endpoint) = &store.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    builder
        .build()
        .map_err(|e| FnError::permanent(format!("{}: cannot use the store: {e}", url(store, ""))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(endpoint: Option<&str>) -> StoreRef {
        StoreRef {
            bucket: "corpus".into(),
            endpoint: endpoint.map(str::to_string),
            region: None,
        }
    }

    #[test]
    fn an_own_endpoint_without_credentials_is_refused_at_once_naming_the_variables() {
        let e = build(&store(Some("http://127.0.0.1:9")), &|_| None).unwrap_err();
        assert!(e.permanent, "{e:?}");
        assert!(
            e.message
                .starts_with("s3://corpus/: the worker has no credentials")
                && e.message.contains("AWS_ACCESS_KEY_ID"),
            "{}",
            e.message
        );
    }

    #[test]
    fn keys_or_a_web_identity_are_credentials() {
        for var in ["AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE"] {
            let env = |name: &str| (name == var).then(|| "x".to_string());
            build(&store(Some("http://127.0.0.1:9")), &env)
                .unwrap_or_else(|e| panic!("{var}: {e:?}"));
        }
    }
}
