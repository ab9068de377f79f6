//! Typed functions: register a Rust closure over serde types and get back a
//! [`TypedFn`] handle that builds FnRefs for it. The engine only ever sees
//! JSON, so types are checked at the two edges a call crosses: arguments
//! when a worker runs the function ([`Args::parse`], a permanent error that
//! names the field), and bound arguments when code builds an FnRef (they
//! must serialize to a JSON object, and a name may be bound once).
//!
//! ```
//! use kontinuum_worker::{Ctx, FnError, FnRefExt, Registry};
//! use serde::{Deserialize, Serialize};
//! use std::sync::Arc;
//!
//! #[derive(Serialize, Deserialize)]
//! struct Add {
//!     a: i64,
//!     b: i64,
//! }
//!
//! let mut registry = Registry::new();
//! let add = registry.function("demo.add", |_ctx: Ctx, x: Add| async move {
//!     Ok::<i64, FnError>(x.a + x.b)
//! });
//! // A closure sent as data: `a` is captured now, `b` comes later.
//! let add4 = add.bind(&serde_json::json!({"a": 4})).map_err(|e| e.to_string())?;
//! let call = add4.bind_with(&serde_json::json!({"b": 5})).map_err(|e| e.to_string())?;
//! let ctx = Ctx::detached(Arc::new(registry));
//! let nine: i64 = futures::executor::block_on(ctx.call_as(&call)).map_err(|e| e.message)?;
//! assert_eq!(nine, 9);
//! # Ok::<(), String>(())
//! ```

use crate::args::Args;
use crate::ctx::Ctx;
use crate::error::FnError;
use crate::invocation::FnResult;
use crate::registry::Registry;
use kontinuum_api::{BindError, FnRef};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;

/// Why arguments could not be bound to an FnRef.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BindArgsError {
    /// The value did not serialize at all (e.g. a map with non-string keys).
    #[error("arguments for '{function}' cannot be serialized: {message}")]
    Serialize { function: String, message: String },
    /// Arguments are named, so they must be a JSON object (a struct or a map).
    #[error("arguments for '{function}' must be an object of named arguments, got {got}")]
    NotAnObject { function: String, got: String },
    #[error(transparent)]
    AlreadyBound(#[from] BindError),
}

impl From<BindArgsError> for FnError {
    /// Inside a function, a bad binding is a bug in the code, not a passing
    /// condition: retrying cannot fix it.
    fn from(e: BindArgsError) -> Self {
        FnError::permanent(e.to_string())
    }
}

/// The named arguments `value` serializes to.
fn to_object<P: Serialize + ?Sized>(
    function: &str,
    value: &P,
) -> Result<Map<String, Value>, BindArgsError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(BindArgsError::NotAnObject {
            function: function.to_string(),
            got: kind_of(&other).to_string(),
        }),
        Err(e) => Err(BindArgsError::Serialize {
            function: function.to_string(),
            message: e.to_string(),
        }),
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed binding on any FnRef, typed or not.
pub trait FnRefExt {
    /// A new FnRef with the fields of `partial` bound too; a name that is
    /// already bound is an error (`argument 'x' is already bound`).
    fn bind_with<P: Serialize + ?Sized>(&self, partial: &P) -> Result<FnRef, BindArgsError>;
}

impl FnRefExt for FnRef {
    fn bind_with<P: Serialize + ?Sized>(&self, partial: &P) -> Result<FnRef, BindArgsError> {
        let extra = to_object(&self.function, partial)?;
        Ok(self.bind(&extra)?)
    }
}

/// A registered function with argument type `A` and result type `R`. It is
/// only a name: cheap to clone, and valid wherever a worker serves that name.
pub struct TypedFn<A, R> {
    name: String,
    // fn(A) -> R: the handle neither owns an A nor an R, so it is Send and
    // Sync whatever they are.
    _types: PhantomData<fn(A) -> R>,
}

impl<A, R> Clone for TypedFn<A, R> {
    fn clone(&self) -> Self {
        TypedFn::named(&self.name)
    }
}

impl<A, R> fmt::Debug for TypedFn<A, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypedFn({})", self.name)
    }
}

impl<A, R> TypedFn<A, R> {
    /// A handle for a function some (possibly other) worker registers under
    /// `name` with these types; nothing checks that it does.
    pub fn named(name: &str) -> Self {
        TypedFn {
            name: name.to_string(),
            _types: PhantomData,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The function with nothing bound.
    pub fn fnref(&self) -> FnRef {
        FnRef::new(self.name.as_str())
    }

    /// The function with some arguments bound (a closure's captures); the
    /// rest come from a later [`FnRefExt::bind_with`], a continuation's
    /// `result`, or a map's `item`.
    pub fn bind<P: Serialize + ?Sized>(&self, partial: &P) -> Result<FnRef, BindArgsError> {
        self.fnref().bind_with(partial)
    }
}

impl<A: Serialize, R> TypedFn<A, R> {
    /// A complete call: every argument bound, checked against `A` by the compiler.
    pub fn call(&self, args: &A) -> Result<FnRef, BindArgsError> {
        self.bind(args)
    }
}

impl<A, R: DeserializeOwned> TypedFn<A, R> {
    /// Runs `call` (an FnRef of this function) inline in the task of `ctx`
    /// and decodes its result as `R`.
    pub async fn call_inline(&self, ctx: &Ctx, call: &FnRef) -> Result<R, FnError> {
        if call.function != self.name {
            return Err(FnError::permanent(format!(
                "'{}' is not an FnRef of '{}'",
                call.function, self.name
            )));
        }
        ctx.call_as(call).await
    }
}

fn encode<R: Serialize>(function: &str, out: R) -> FnResult {
    serde_json::to_value(out).map_err(|e| {
        FnError::permanent(format!(
            "the result of '{function}' cannot be serialized: {e}"
        ))
    })
}

impl Registry {
    /// Registers an async function over typed arguments and result. Missing
    /// or mistyped arguments fail the call permanently, naming the field;
    /// arguments `A` does not declare are ignored (so it can be mapped).
    pub fn function<A, R, F, Fut>(&mut self, name: &str, f: F) -> TypedFn<A, R>
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
        F: Fn(Ctx, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, FnError>> + Send + 'static,
    {
        let owned = name.to_string();
        self.register(name, move |ctx, args| {
            // Parse before the future starts, so the future does not hold the Args.
            let started = args.parse::<A>().map(|a| f(ctx, a));
            let name = owned.clone();
            async move { encode(&name, started?.await?) }
        });
        TypedFn::named(name)
    }

    /// The sync form of [`Registry::function`], for quick pure functions
    /// (see [`Registry::register_sync`]: it must not block).
    pub fn function_sync<A, R, F>(&mut self, name: &str, f: F) -> TypedFn<A, R>
    where
        A: DeserializeOwned + 'static,
        R: Serialize + 'static,
        F: Fn(&Ctx, A) -> Result<R, FnError> + Send + Sync + 'static,
    {
        let owned = name.to_string();
        self.register_sync(name, move |ctx, args: Args<'_>| {
            encode(&owned, f(ctx, args.parse::<A>()?)?)
        });
        TypedFn::named(name)
    }
}

impl Ctx {
    /// [`Ctx::call_inline`], with the result decoded as `T` (a mismatch is a
    /// permanent error: the same call would give the same value again).
    pub async fn call_as<T: DeserializeOwned>(&self, call: &FnRef) -> Result<T, FnError> {
        let value = self.call_inline(call).await?;
        serde_path_to_error::deserialize(value).map_err(|e| {
            FnError::permanent(format!(
                "the result of '{}' does not have the expected type at '{}': {}",
                call.function,
                e.path(),
                e.inner()
            ))
        })
    }
}

/// A serde adapter for FnRef fields in their `{"$fn": {...}}` value form:
/// `#[serde(with = "kontinuum_worker::fn_value")] handler: FnRef`, or
/// `#[serde(default, with = "kontinuum_worker::fn_value::option")]` for an
/// `Option<FnRef>`.
pub mod fn_value {
    use kontinuum_api::FnRef;
    use serde::de::Error;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use serde_json::Value;

    pub fn serialize<S: Serializer>(f: &FnRef, s: S) -> Result<S::Ok, S::Error> {
        f.to_value().serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FnRef, D::Error> {
        let value = Value::deserialize(d)?;
        match FnRef::from_value(&value) {
            Some(Ok(f)) => Ok(f),
            Some(Err(e)) => Err(D::Error::custom(e)),
            None => Err(D::Error::custom(
                "expected a function value {\"$fn\": {function, args}}",
            )),
        }
    }

    pub mod option {
        use kontinuum_api::FnRef;
        use serde::{Deserialize, Deserializer, Serializer};
        use serde_json::Value;

        pub fn serialize<S: Serializer>(f: &Option<FnRef>, s: S) -> Result<S::Ok, S::Error> {
            match f {
                Some(f) => super::serialize(f, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<FnRef>, D::Error> {
            match Option::<Value>::deserialize(d)? {
                None | Some(Value::Null) => Ok(None),
                Some(v) => super::deserialize(v)
                    .map(Some)
                    .map_err(serde::de::Error::custom),
            }
        }
    }
}

#[cfg(test)]
#[path = "typed_tests.rs"]
mod tests;
