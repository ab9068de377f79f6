//! Who is calling, and what they may touch.
//!
//! Two ways in: the shared `--token-file` token (laptops, tests, the CLI of
//! an administrator), which may do anything; or a token an [`Authenticator`]
//! accepts — in a cluster a worker pod's projected ServiceAccount token,
//! checked by the operator with a TokenReview — which confines the caller to
//! one namespace. A confined caller that reaches for another namespace gets
//! 403 with a message that names no other namespace's objects.

use std::future::Future;
use std::pin::Pin;

/// The caller of one request, as the auth layer established it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// The shared token, or a server without auth: every namespace.
    Anyone,
    /// Confined to `namespace`; `subject` says who (for logs).
    Namespace { namespace: String, subject: String },
}

impl Caller {
    /// The namespace the caller is confined to, if any.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Caller::Anyone => None,
            Caller::Namespace { namespace, .. } => Some(namespace),
        }
    }

    /// Whether the caller may touch objects of `namespace`.
    pub fn may(&self, namespace: &str) -> bool {
        self.namespace().is_none_or(|own| own == namespace)
    }
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not a valid token (401).
    #[error("{0}")]
    Rejected(String),
    /// The token is valid but may not use this API (403).
    #[error("{0}")]
    Forbidden(String),
    /// The check could not be made (503; the caller should retry).
    #[error("cannot check the token now: {0}")]
    Unavailable(String),
}

pub type AuthFuture<'a> = Pin<Box<dyn Future<Output = Result<Caller, AuthError>> + Send + 'a>>;

/// Checks bearer tokens other than the shared one.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(&'a self, token: &'a str) -> AuthFuture<'a>;
}

/// The 403 message for a confined caller that reached outside its
/// namespace: its own namespace only, nothing of the other.
pub fn outside(caller: &Caller, what: &str) -> String {
    match caller.namespace() {
        Some(own) => format!(
            "{what} is outside namespace '{own}': a worker may touch only its own namespace's pools and objects"
        ),
        None => format!("{what} is not allowed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confined_caller_may_touch_its_namespace_only() {
        let c = Caller::Namespace {
            namespace: "team-a".into(),
            subject: "system:serviceaccount:team-a:default".into(),
        };
        assert!(c.may("team-a"));
        assert!(!c.may("team-b"));
        assert!(Caller::Anyone.may("team-b"));
        let message = outside(&c, "this lease");
        assert!(message.contains("team-a") && !message.contains("team-b"));
    }
}
