//! The integer-kernel fast path of a map leaf: a range slice, a function
//! with [`Function::int_kernel`](crate::Function::int_kernel), and a sum,
//! mean or count reducer. Items and results stay machine numbers; the leaf
//! answers with the same accumulator value the generic path would build.

use super::cursor::{CHECK_EVERY, Cursor, RangeCursor, checkpoint};
use crate::ctx::{Ctx, IntKernel};
use crate::error::FnError;
use crate::invocation::Scalar;
use kontinuum_api::BuiltinReducer;
use kontinuum_api::accumulator::{Accumulator, ReduceError, int_value};
use serde_json::{Map, Number, Value};
use std::time::Instant;

/// Runs the leaf on the kernel; `None` when the reducer has no fast path.
pub(super) async fn run_kernel(
    ctx: &Ctx,
    kernel: &IntKernel<'_>,
    reducer: BuiltinReducer,
    cursor: &mut RangeCursor,
) -> Result<Option<Value>, FnError> {
    if !matches!(
        reducer,
        BuiltinReducer::Sum | BuiltinReducer::Mean | BuiltinReducer::Count
    ) {
        return Ok(None);
    }
    let name = reducer.name();
    let overflow = |e: ReduceError| FnError::permanent(format!("reduce {name}: {e}"));
    let mut int: i128 = 0;
    let mut float: Option<f64> = None;
    let mut last_yield = Instant::now();
    // count still calls the function (it may fail) but adds nothing up.
    let counting = reducer == BuiltinReducer::Count;
    while cursor.next < cursor.end {
        let chunk_end = cursor
            .end
            .min(cursor.next.saturating_add(i64::from(CHECK_EVERY)));
        for item in cursor.next..chunk_end {
            let value = kernel(item)?;
            if counting {
                continue;
            }
            match value {
                Scalar::Int(i) => {
                    int = int
                        .checked_add(i)
                        .ok_or_else(|| overflow(ReduceError::IntegerOverflow { reducer: name }))?;
                }
                Scalar::Float(f) => float = Some(float.unwrap_or(0.0) + f),
            }
        }
        cursor.next = chunk_end;
        checkpoint(ctx, cursor, &mut last_yield).await?;
    }
    ctx.progress(cursor.done());
    if let Some(f) = float
        && !(int as f64 + f).is_finite()
    {
        return Err(overflow(ReduceError::FloatOverflow { reducer: name }));
    }
    // The accumulator's documented wire form, checked by reading it back.
    let mut obj = Map::new();
    obj.insert("reducer".into(), Value::from(name));
    obj.insert("count".into(), Value::from(cursor.done()));
    if !counting {
        obj.insert("sum".into(), int_value(int));
        if let Some(f) = float.and_then(Number::from_f64) {
            obj.insert("floatSum".into(), Value::Number(f));
        }
    }
    let acc = Accumulator::from_value(&Value::Object(obj))
        .map_err(|e| FnError::permanent(format!("reduce {name}: {e}")))?;
    Ok(Some(acc.to_value()))
}
