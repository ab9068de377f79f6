//! Executing one leased piece of work to a result, with panics caught.

use crate::args::Args;
use crate::ctx::Ctx;
use crate::error::FnError;
use crate::fold::Folder;
use crate::invocation::FnResult;
use crate::map::{plan_source, run_leaf};
use crate::objects::write_output;
use futures::FutureExt;
use kontinuum_api::work::Work;
use std::any::Any;
use std::panic::AssertUnwindSafe;

/// The function a piece of work is about, for messages.
pub(crate) fn work_function(work: &Work) -> &str {
    match work {
        Work::Call { call } => &call.function,
        Work::MapLeaf { function, .. } => &function.function,
        Work::Fold { reducer, .. } => &reducer.function,
        Work::Plan { .. } => kontinuum_api::work::PLAN_FUNCTION,
        Work::Output { .. } => kontinuum_api::work::OUTPUT_FUNCTION,
    }
}

/// Runs one piece of work to its result in this task (no engine involved):
/// the runtime's path, also handy for testing functions and map leaves.
pub async fn execute(ctx: &Ctx, work: Work) -> FnResult {
    match work {
        // The lease's args are ours: move them in rather than borrow and clone.
        Work::Call { call } => {
            ctx.invoke(&call.function, Args::owned(call.args))
                .resolve()
                .await
        }
        Work::MapLeaf {
            function,
            slice,
            reducer,
        } => run_leaf(ctx, &function, slice, reducer).await,
        Work::Fold { reducer, values } => {
            let mut folder = Folder::function(reducer)?;
            for value in values {
                folder.add(ctx, value).await?;
            }
            folder.finish()
        }
        Work::Plan { source } => plan_source(source).await,
        Work::Output { store, key, value } => write_output(&store, &key, &value).await,
    }
}

/// [`execute`], turning a panic anywhere in the work into a permanent
/// failure with the panic's message: a panic is a bug, and retrying the
/// same arguments would most likely panic again.
pub(crate) async fn execute_catching(ctx: &Ctx, work: Work) -> FnResult {
    let function = work_function(&work).to_string();
    match AssertUnwindSafe(execute(ctx, work)).catch_unwind().await {
        Ok(result) => result,
        Err(payload) => Err(FnError::permanent(format!(
            "function '{function}' panicked: {}",
            panic_message(payload.as_ref())
        ))),
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}
