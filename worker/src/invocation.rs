//! What calling a function gives back. A function either answers at once
//! ([`Invocation::Ready`], the sync fast path: a map leaf calls it per item
//! with no future, no box and no task) or hands back a future
//! ([`Invocation::Pending`]). A leaf: the context, the registry and every
//! caller speak it.

use crate::error::FnError;
use futures::future::BoxFuture;
use kontinuum_api::accumulator::int_value;
use serde_json::{Number, Value};

pub type FnResult = Result<Value, FnError>;

/// What calling a function gives back.
pub enum Invocation {
    Ready(FnResult),
    Pending(BoxFuture<'static, FnResult>),
}

impl Invocation {
    /// The result of a sync call; an async one here is an error (for sync
    /// functions that delegate to others they know are sync).
    pub fn resolve_now(self) -> FnResult {
        match self {
            Invocation::Ready(r) => r,
            Invocation::Pending(_) => Err(FnError::permanent(
                "an async function was called where only a sync one can run",
            )),
        }
    }

    /// The result, awaiting the future if there is one.
    pub async fn resolve(self) -> FnResult {
        match self {
            Invocation::Ready(r) => r,
            Invocation::Pending(f) => f.await,
        }
    }
}

/// A number on the integer-kernel fast path.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scalar {
    Int(i128),
    Float(f64),
}

impl Scalar {
    /// As JSON: integers exact at any size, floats as numbers (a non-finite
    /// float is an error, JSON has no such number).
    pub fn to_value(self) -> FnResult {
        match self {
            Scalar::Int(i) => Ok(int_value(i)),
            Scalar::Float(f) => Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| FnError::permanent(format!("result {f} is not a finite number"))),
        }
    }
}
