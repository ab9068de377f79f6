//! A handler's functions as the registry sees them: the pool's roster as
//! the registry's dynamic source ([`HandlerPool::functions`]), and for each
//! name a function whose call is one line to the least busy ready process
//! and one reply back. Above pool.rs, which runs the processes and needs
//! none of this.

use super::pool::{HandlerPool, PoolInner};
use super::process::Live;
use super::protocol::{self, MAX_LINE};
use crate::args::Args;
use crate::ctx::{Ctx, Function};
use crate::error::FnError;
use crate::invocation::{FnResult, Invocation};
use crate::registry::DynamicFunctions;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::watch;

impl HandlerPool {
    /// What a registry consults for the names it does not hold.
    pub fn functions(self: &Arc<Self>) -> Arc<dyn DynamicFunctions> {
        Arc::new(Roster(self.inner.clone()))
    }
}

/// The pool as a registry's dynamic source.
struct Roster(Arc<PoolInner>);

impl DynamicFunctions for Roster {
    fn resolve(&self, name: &str) -> Option<Arc<dyn Function>> {
        // Before any hello, any name may be the handler's: the call waits
        // for the hello to know.
        if self.0.hello_seen.load(Ordering::SeqCst) && !self.0.serves(name) {
            return None;
        }
        let mut functions = self.0.functions.lock();
        let f = functions.entry(name.to_string()).or_insert_with(|| {
            Arc::new(HandlerFunction::new(self.0.clone(), name.to_string())) as Arc<dyn Function>
        });
        Some(f.clone())
    }

    fn names(&self) -> Vec<String> {
        self.0.roster()
    }

    fn changes(&self) -> watch::Receiver<u64> {
        self.0.roster_changes()
    }
}

pub(crate) struct HandlerFunction {
    pool: Arc<PoolInner>,
    name: String,
}

impl HandlerFunction {
    pub(crate) fn new(pool: Arc<PoolInner>, name: String) -> Self {
        HandlerFunction { pool, name }
    }
}

/// Item calls a map leaf keeps on their way to a handler: enough that a
/// process is never idle waiting for the next item.
const MAP_WINDOW: usize = 32;

impl Function for HandlerFunction {
    fn map_window(&self) -> usize {
        MAP_WINDOW
    }

    fn invoke(&self, ctx: &Ctx, args: Args<'_>) -> Invocation {
        let id = self.pool.next_id();
        let info = ctx.info();
        // Written now: the future must not borrow the arguments.
        let line = match protocol::call_line(id, &self.name, &args, info.attempt, info.deadline) {
            Ok(line) if line.len() <= MAX_LINE => line,
            Ok(line) => {
                return Invocation::Ready(Err(FnError::permanent(format!(
                    "the arguments of '{}' take {} bytes as a protocol line; a handler takes at most {MAX_LINE}",
                    self.name,
                    line.len()
                ))));
            }
            Err(e) => {
                return Invocation::Ready(Err(FnError::permanent(format!(
                    "the arguments of '{}' cannot be written as JSON: {e}",
                    self.name
                ))));
            }
        };
        let (pool, name, ctx) = (self.pool.clone(), self.name.clone(), ctx.clone());
        Invocation::Pending(Box::pin(
            async move { call(&pool, &name, &ctx, id, line).await },
        ))
    }
}

/// Stops the call on its process when the caller stops waiting (the task
/// timed out, was cancelled, or the worker is handing it back).
struct Waiting {
    live: Arc<Live>,
    id: u64,
    grace: Duration,
    answered: bool,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if !self.answered {
            self.live.abandon(self.id, self.grace);
        }
    }
}

async fn call(
    pool: &Arc<PoolInner>,
    name: &str,
    ctx: &Ctx,
    id: u64,
    mut line: Vec<u8>,
) -> FnResult {
    let started = Instant::now();
    let mut give_up = started + pool.config.ready_wait;
    if let Some(deadline) = ctx.info().deadline
        && let Ok(left) = deadline.duration_since(SystemTime::now())
    {
        give_up = give_up.min(Instant::now() + left);
    }
    loop {
        let ready = pool.ready.notified();
        tokio::pin!(ready);
        ready.as_mut().enable();
        if pool.hello_seen.load(Ordering::SeqCst) && !pool.serves(name) {
            return Err(ctx.unknown_function(name));
        }
        if let Some(live) = pool.pick() {
            let reply = match live.submit(id, name, ctx, line) {
                Ok(reply) => reply,
                Err(back) => {
                    // It died just now; another may be ready.
                    line = back;
                    continue;
                }
            };
            let mut waiting = Waiting {
                live,
                id,
                grace: pool.config.abandon_grace,
                answered: false,
            };
            let result = reply.await;
            waiting.answered = true;
            return result.unwrap_or_else(|_| {
                Err(FnError::retryable(format!(
                    "handler process {} ended without answering call {id} of '{name}'",
                    waiting.live.index
                )))
            });
        }
        tokio::select! {
            () = &mut ready => {}
            () = tokio::time::sleep_until(give_up.into()) => {
                return Err(FnError::retryable(format!(
                    "no handler process was ready to run '{name}' for {} ms: {}",
                    started.elapsed().as_millis(),
                    pool.last_failure()
                )));
            }
            () = ctx.cancelled() => return Err(FnError::retryable("cancelled")),
        }
    }
}
