//! The HTTP server: binding (and refusing to go unauthenticated beyond
//! loopback), the router, and the layers every request passes: panic
//! catching, bearer auth, the body limit, JSON 404/405.

use crate::auth::{AuthError, Authenticator, Caller};
use crate::body::{BodyTimeout, Json, too_large};
use crate::conn::Limits;
use crate::engine_metrics::EngineCollector;
use crate::error::{ApiError, ServeError};
use crate::metrics::{count, serve_metrics};
use crate::routes::{objects, submit, work};
use crate::state::{AppState, AppStateRef};
use axum::Extension;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use kontinuum_api::endpoints::{Health, MAX_BODY_BYTES, codes};
use kontinuum_engine::Engine;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    state: AppStateRef,
    limits: Limits,
}

impl Server {
    /// Binds `listen`. Without a token only loopback addresses are allowed:
    /// the API can run arbitrary registered functions with any arguments.
    pub async fn bind(
        engine: Engine,
        listen: SocketAddr,
        token: Option<String>,
    ) -> Result<Server, ServeError> {
        Server::bind_with(engine, listen, token, None).await
    }

    /// [`Server::bind`] that also accepts the tokens `authenticator`
    /// accepts, each confining its caller to one namespace (auth.rs).
    pub async fn bind_with(
        engine: Engine,
        listen: SocketAddr,
        token: Option<String>,
        authenticator: Option<Arc<dyn Authenticator>>,
    ) -> Result<Server, ServeError> {
        if let Some(t) = &token
            && (t.is_empty() || HeaderValue::from_str(&format!("Bearer {t}")).is_err())
        {
            return Err(ServeError::BadToken);
        }
        if token.is_none() && authenticator.is_none() && !listen.ip().is_loopback() {
            return Err(ServeError::TokenRequired(listen));
        }
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|source| ServeError::Bind {
                addr: listen,
                source,
            })?;
        let state = AppState::new(engine, token, authenticator);
        Ok(Server {
            listener,
            state,
            limits: Limits::default(),
        })
    }

    /// Other read timeouts or connection cap than the defaults (tests).
    pub fn with_limits(mut self, limits: Limits) -> Server {
        self.limits = limits;
        self
    }

    /// Who is connected, for the operator's WorkerPool status.
    pub fn roster(&self) -> crate::state::Roster {
        crate::state::Roster(self.state.clone())
    }

    /// The address actually bound (port 0 picks a free port).
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` resolves, then lets requests in flight end
    /// (long polls end within a fraction of a second).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let addr = self.local_addr()?;
        let state = self.state.clone();
        tracing::info!(
            %addr,
            shared_token = state.token.is_some(),
            token_review = state.authenticator.is_some(),
            "serving the worker API"
        );
        let app = router(self.state).layer(Extension(BodyTimeout(self.limits.body_read)));
        crate::conn::serve(self.listener, app, self.limits, async move {
            shutdown.await;
            tracing::info!("shutting down the worker API");
            state.stopping.store(true, Ordering::SeqCst);
        })
        .await;
        Ok(())
    }

    /// Registers this server's series into `registry`: the engine's (see
    /// [`EngineCollector`]), its connected workers per pool, and its
    /// requests. Once per registry.
    pub fn register_metrics(
        &self,
        registry: &prometheus::Registry,
    ) -> Result<(), prometheus::Error> {
        let state = self.state.clone();
        registry.register(Box::new(EngineCollector::build(
            state.engine.clone(),
            Some(state.clone()),
        )))?;
        state.metrics.register(registry)
    }

    /// Serves this server's series (see [`Server::register_metrics`]) on
    /// their own listener at `listen`, for as long as the process runs.
    pub async fn serve_metrics(&self, listen: SocketAddr) -> Result<SocketAddr, ServeError> {
        let registry = prometheus::Registry::new();
        self.register_metrics(&registry).expect("registered once"); // ok: fresh registry
        serve_metrics(listen, registry, std::future::pending()).await
    }
}

/// Serves the engine's API on `listen` until `shutdown` resolves. A token
/// is required unless `listen` is a loopback address; with one, every
/// request but `/healthz` must carry `Authorization: Bearer TOKEN`.
pub async fn serve(
    engine: Engine,
    listen: SocketAddr,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::bind(engine, listen, token)
        .await?
        .run(shutdown)
        .await
}

/// Reads a `--token-file` the way `kontinuum-worker` does: surrounding
/// whitespace (a trailing newline) is not part of the token.
pub fn token_from_file(path: &std::path::Path) -> Result<String, ServeError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServeError::TokenFile {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(ServeError::BadToken);
    }
    Ok(token.to_string())
}

fn router(state: AppStateRef) -> Router {
    let v1 = Router::new()
        .route("/workers/register", post(work::register))
        .route("/workers", get(work::workers))
        .route("/lease", post(work::lease))
        .route("/heartbeat", post(work::heartbeat))
        .route("/complete", post(work::complete))
        .route("/release", post(work::release))
        .route("/split", post(work::split))
        .route("/children", post(work::add_child))
        .route("/spawn", post(work::spawn))
        .route("/objects", post(submit::submit).get(objects::list))
        .route("/objects/{namespace}/{kind}/{name}", get(objects::get))
        .route(
            "/objects/{namespace}/{kind}/{name}/cancel",
            post(objects::cancel),
        )
        .route(
            "/objects/{namespace}/{kind}/{name}/tree",
            get(objects::tree),
        )
        .route(
            "/objects/{namespace}/{kind}/{name}/result",
            get(objects::result),
        );
    layered(Router::new().nest("/v1", v1), state)
}

/// The routes every server has, and the layers around all of them.
fn layered(routes: Router<AppStateRef>, state: AppStateRef) -> Router {
    routes
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn(declared_length))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(state.metrics.clone(), count))
        .with_state(state)
}

/// 503 once the store failed, so that a liveness probe restarts the
/// process: only reopening the store recovers from a failed write.
async fn healthz(State(state): State<AppStateRef>) -> Result<Json<Health>, ApiError> {
    state.engine.health()?;
    Ok(Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
    }))
}

async fn not_found(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        format!("no such route: {} {}", req.method(), req.uri().path()),
    )
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.uri().path()),
    )
}

/// Every request but the health probe carries a token (probes cannot
/// easily hold a secret, and the probe reveals nothing): the shared one,
/// which may do anything, or one the authenticator accepts, which confines
/// the request to a namespace. The handlers read the [`Caller`].
async fn auth(State(state): State<AppStateRef>, mut req: Request, next: Next) -> Response {
    if state.token.is_none() && state.authenticator.is_none() {
        req.extensions_mut().insert(Caller::Anyone);
        return next.run(req).await;
    }
    if req.uri().path() == "/healthz" {
        return next.run(req).await;
    }
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_string);
    let Some(given) = given else {
        return unauthorized("missing bearer token (Authorization: Bearer TOKEN)");
    };
    let caller = match (&state.token, &state.authenticator) {
        (Some(expected), _) if same(given.as_bytes(), expected.as_bytes()) => Caller::Anyone,
        (_, Some(authenticator)) => match authenticator.authenticate(&given).await {
            Ok(caller) => caller,
            Err(AuthError::Rejected(m)) => return unauthorized(&m),
            Err(AuthError::Forbidden(m)) => return ApiError::forbidden(m).into_response(),
            Err(e @ AuthError::Unavailable(_)) => {
                return ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::UNAVAILABLE,
                    e.to_string(),
                )
                .into_response();
            }
        },
        _ => return unauthorized("wrong bearer token"),
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

fn unauthorized(message: &str) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Compares without stopping at the first difference, so timing does not
/// reveal how much of a guessed token was right.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Refuses a body declared too large before reading any of it.
async fn declared_length(req: Request, next: Next) -> Response {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        let mut refused = too_large();
        refused.close = true;
        return refused.into_response();
    }
    next.run(req).await
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("a request handler panicked");
    ApiError::internal("the server failed while handling this request").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_is_a_500_json_answer_and_serving_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(dir.path(), Default::default()).unwrap();
        let server = Server::bind(engine, "127.0.0.1:0".parse().unwrap(), None)
            .await
            .unwrap();
        let addr = server.local_addr().unwrap();
        async fn boom() -> &'static str {
            panic!("boom")
        }
        let app = layered(
            Router::new().route("/boom", get(boom)),
            server.state.clone(),
        );
        tokio::spawn(async move { axum::serve(server.listener, app).await });
        let http = reqwest::Client::new();
        for _ in 0..2 {
            let resp = http
                .get(format!("http://{addr}/boom"))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 500);
            let body: serde_json::Value =
                serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            assert_eq!(body["error"], "internal");
        }
        let resp = http
            .get(format!("http://{addr}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
}
