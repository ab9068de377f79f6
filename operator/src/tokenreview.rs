//! Worker identity in a cluster: a worker pod presents its projected
//! ServiceAccount token (audience `kontinuum.dev`); the API server says
//! whose it is (TokenReview) and the worker is confined to that
//! ServiceAccount's namespace. Answers are cached briefly so that a
//! worker's every lease and heartbeat is not a TokenReview; refusals are
//! not cached, so a fixed token works at once.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec, TokenReviewStatus};
use kontinuum_server::auth::{AuthError, AuthFuture, Authenticator, Caller};
use kube::api::PostParams;
use kube::{Api, Client};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const AUDIENCE: &str = "kontinuum.dev";
/// How long an accepted token is trusted without asking again.
const TRUST_FOR: Duration = Duration::from_secs(60);
/// Cached answers at most (beyond it the expired ones go, then all).
const CACHE_MAX: usize = 10_000;

pub struct TokenReviewer {
    api: Api<TokenReview>,
    /// sha256(token) → (caller, valid until): the tokens themselves are not
    /// kept in memory longer than a request.
    cache: Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
}

impl TokenReviewer {
    pub fn new(client: Client) -> TokenReviewer {
        TokenReviewer {
            api: Api::all(client),
            cache: Mutex::new(HashMap::new()),
        }
    }

    async fn review(&self, token: &str) -> Result<Caller, AuthError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = Instant::now();
        if let Some((caller, until)) = self.cache.lock().get(&key)
            && *until > now
        {
            return Ok(caller.clone());
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: Some(vec![AUDIENCE.to_string()]),
            },
            ..TokenReview::default()
        };
        let answer = self
            .api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| AuthError::Unavailable(format!("TokenReview: {e}")))?;
        let caller = decide(answer.status.as_ref())?;
        let mut cache = self.cache.lock();
        if cache.len() >= CACHE_MAX {
            cache.retain(|_, (_, until)| *until > now);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, (caller.clone(), now + TRUST_FOR));
        Ok(caller)
    }
}

impl Authenticator for TokenReviewer {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a> {
        Box::pin(self.review(token))
    }
}

/// The caller a TokenReview's answer stands for: a ServiceAccount, for our
/// audience, confined to its namespace. Pure.
pub fn decide(status: Option<&TokenReviewStatus>) -> Result<Caller, AuthError> {
    let Some(status) = status else {
        return Err(AuthError::Unavailable(
            "TokenReview answered without a status".into(),
        ));
    };
    if status.authenticated != Some(true) {
        let why = status.error.as_deref().unwrap_or("not authenticated");
        return Err(AuthError::Rejected(format!(
            "the token was not accepted ({why}); a worker pod presents its projected ServiceAccount token with audience '{AUDIENCE}'"
        )));
    }
    // An API server that cannot check audiences answers without them.
    if let Some(audiences) = &status.audiences
        && !audiences.iter().any(|a| a == AUDIENCE)
    {
        return Err(AuthError::Rejected(format!(
            "the token is not meant for this API (audience '{AUDIENCE}' expected)"
        )));
    }
    let username = status
        .user
        .as_ref()
        .and_then(|u| u.username.clone())
        .unwrap_or_default();
    match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, account)) if !namespace.is_empty() && !account.is_empty() => {
            Ok(Caller::Namespace {
                namespace: namespace.to_string(),
                subject: username.clone(),
            })
        }
        _ => Err(AuthError::Forbidden(format!(
            "'{username}' is not a ServiceAccount: workers authenticate as the ServiceAccount of their pod"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::authentication::v1::UserInfo;

    fn status(authenticated: bool, user: &str, audiences: Option<&[&str]>) -> TokenReviewStatus {
        TokenReviewStatus {
            authenticated: Some(authenticated),
            user: Some(UserInfo {
                username: Some(user.into()),
                ..UserInfo::default()
            }),
            audiences: audiences.map(|a| a.iter().map(|s| s.to_string()).collect()),
            error: None,
        }
    }

    #[test]
    fn a_service_account_is_confined_to_its_namespace() {
        let s = status(
            true,
            "system:serviceaccount:team-a:workers",
            Some(&[AUDIENCE]),
        );
        assert_eq!(
            decide(Some(&s)).unwrap(),
            Caller::Namespace {
                namespace: "team-a".into(),
                subject: "system:serviceaccount:team-a:workers".into()
            }
        );
    }

    #[test]
    fn refusals_say_why() {
        let not = status(false, "", None);
        assert!(matches!(decide(Some(&not)), Err(AuthError::Rejected(_))));
        let other_audience = status(
            true,
            "system:serviceaccount:a:b",
            Some(&["https://kubernetes.default.svc"]),
        );
        assert!(
            matches!(decide(Some(&other_audience)), Err(AuthError::Rejected(m)) if m.contains(AUDIENCE))
        );
        let user = status(true, "alice", Some(&[AUDIENCE]));
        assert!(matches!(decide(Some(&user)), Err(AuthError::Forbidden(m)) if m.contains("alice")));
        let broken = status(true, "system:serviceaccount:only-ns", Some(&[AUDIENCE]));
        assert!(matches!(
            decide(Some(&broken)),
            Err(AuthError::Forbidden(_))
        ));
        assert!(matches!(decide(None), Err(AuthError::Unavailable(_))));
    }
}
