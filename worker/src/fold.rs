//! Folding values into one: a built-in reducer's accumulator, or an FnRef
//! reducer called inline with {acc, value} (the first value is the initial acc).

use crate::args::Args;
use crate::ctx::Ctx;
use crate::error::FnError;
use kontinuum_api::accumulator::{Accumulator, deep_merge};
use kontinuum_api::reducer::Reducer;
use kontinuum_api::{BuiltinReducer, FnRef};
use serde_json::{Map, Value};
use std::borrow::Cow;

pub(crate) enum Folder {
    Builtin(Accumulator),
    /// `merge`, folded in place. `Accumulator::add` copies the whole merged
    /// object per value (so that a failed add leaves it unchanged), which
    /// makes a word count quadratic in the vocabulary; here a failure fails
    /// the whole leaf, so in place is safe.
    Merge {
        acc: Option<Value>,
        count: u64,
    },
    Function {
        reducer: FnRef,
        acc: Option<Value>,
    },
}

fn reduce_error(reducer: BuiltinReducer, e: impl std::fmt::Display) -> FnError {
    FnError::permanent(format!("reduce {}: {e}", reducer.name()))
}

impl Folder {
    /// Checks once, not per value, that the reducer leaves `acc` and `value` free.
    pub(crate) fn new(reducer: Reducer) -> Result<Folder, FnError> {
        match reducer {
            Reducer::Builtin(BuiltinReducer::Merge) => Ok(Folder::Merge {
                acc: None,
                count: 0,
            }),
            Reducer::Builtin(b) => Ok(Folder::Builtin(Accumulator::new(b))),
            Reducer::Function(f) => Folder::function(f),
        }
    }

    pub(crate) fn function(reducer: FnRef) -> Result<Folder, FnError> {
        for name in ["acc", "value"] {
            if reducer.args.contains_key(name) {
                return Err(FnError::permanent(format!(
                    "reducer '{}': argument '{name}' is already bound",
                    reducer.function
                )));
            }
        }
        Ok(Folder::Function { reducer, acc: None })
    }

    /// True when [`Folder::add_now`] can fold (no function call to await).
    pub(crate) fn is_builtin(&self) -> bool {
        !matches!(self, Folder::Function { .. })
    }

    /// Folds in one value for a built-in reducer (no await); an FnRef
    /// reducer needs [`Folder::add`].
    #[inline]
    pub(crate) fn add_now(&mut self, value: Value) -> Result<(), FnError> {
        match self {
            Folder::Builtin(acc) => acc.add(&value).map_err(|e| reduce_error(acc.reducer(), e)),
            Folder::Merge { acc, count } => {
                match acc {
                    None => *acc = Some(value),
                    Some(current) => deep_merge(current, &value)
                        .map_err(|e| reduce_error(BuiltinReducer::Merge, e))?,
                }
                *count += 1;
                Ok(())
            }
            Folder::Function { reducer, .. } => Err(FnError::permanent(format!(
                "reducer '{}' must be called, not folded in place",
                reducer.function
            ))),
        }
    }

    /// Folds in one value.
    pub(crate) async fn add(&mut self, ctx: &Ctx, value: Value) -> Result<(), FnError> {
        let Folder::Function { reducer, acc } = self else {
            return self.add_now(value);
        };
        let next = match acc.take() {
            None => value,
            Some(current) => {
                let args = Args::new(&reducer.args)
                    .with_unchecked("acc", Cow::Owned(current))
                    .with_unchecked("value", Cow::Owned(value));
                ctx.invoke(&reducer.function, args).resolve().await?
            }
        };
        *acc = Some(next);
        Ok(())
    }

    /// The answer of a map leaf or fold: the accumulator as a value for a
    /// built-in reducer (the engine merges it further up), the folded value
    /// (null when there was none) for an FnRef reducer.
    pub(crate) fn finish(self) -> Result<Value, FnError> {
        match self {
            Folder::Builtin(acc) => Ok(acc.to_value()),
            Folder::Merge { acc, count } => {
                // The accumulator's documented wire form, checked by reading it back.
                let mut obj = Map::new();
                obj.insert("reducer".into(), Value::from(BuiltinReducer::Merge.name()));
                obj.insert("count".into(), Value::from(count));
                if let Some(v) = acc {
                    obj.insert("value".into(), v);
                }
                let obj = Value::Object(obj);
                Accumulator::from_value(&obj)
                    .map_err(|e| reduce_error(BuiltinReducer::Merge, e))?;
                Ok(obj)
            }
            Folder::Function { acc, .. } => Ok(acc.unwrap_or(Value::Null)),
        }
    }
}
