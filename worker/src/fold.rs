//! Folding values into one: a built-in reducer's accumulator, or an FnRef
//! reducer called inline with {acc, value} (the first value is the initial acc).

use crate::args::Args;
use crate::ctx::Ctx;
use crate::error::FnError;
use kontinuum_api::FnRef;
use kontinuum_api::reduce::Accumulator;
use kontinuum_api::reducer::Reducer;
use serde_json::Value;
use std::borrow::Cow;

pub(crate) enum Folder {
    Builtin(Accumulator),
    Function { reducer: FnRef, acc: Option<Value> },
}

impl Folder {
    /// Checks once, not per value, that the reducer leaves `acc` and `value` free.
    pub(crate) fn new(reducer: Reducer) -> Result<Folder, FnError> {
        match reducer {
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

    /// Folds in one value for a built-in reducer (no await); an FnRef
    /// reducer needs [`Folder::add`].
    #[inline]
    pub(crate) fn add_now(&mut self, value: &Value) -> Result<(), FnError> {
        match self {
            Folder::Builtin(acc) => acc
                .add(value)
                .map_err(|e| FnError::permanent(format!("reduce {}: {e}", acc.reducer().name()))),
            Folder::Function { reducer, .. } => Err(FnError::permanent(format!(
                "reducer '{}' must be called, not folded in place",
                reducer.function
            ))),
        }
    }

    /// Folds in one value.
    pub(crate) async fn add(&mut self, ctx: &Ctx, value: Value) -> Result<(), FnError> {
        match self {
            Folder::Builtin(_) => self.add_now(&value),
            Folder::Function { reducer, acc } => {
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
        }
    }

    /// The answer of a map leaf or fold: the accumulator as a value for a
    /// built-in reducer (the engine merges it further up), the folded value
    /// (null when there was none) for an FnRef reducer.
    pub(crate) fn finish(self) -> Value {
        match self {
            Folder::Builtin(acc) => acc.to_value(),
            Folder::Function { acc, .. } => acc.unwrap_or(Value::Null),
        }
    }
}
