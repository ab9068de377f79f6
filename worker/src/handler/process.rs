//! One running handler process as the worker sees it: the calls waiting for
//! its replies, the loop that reads what it writes, and what happens to
//! those calls when it dies. Starting and restarting it is `pool.rs`'s job.

use super::lines::{Line, LineReader};
use super::output::Output;
use super::protocol::{self, FromHandler, MAX_LINE};
use crate::ctx::Ctx;
use crate::error::FnError;
use crate::invocation::FnResult;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio::sync::{Notify, oneshot};

/// How much of a process's stderr a failure message quotes.
const STDERR_TAIL: usize = 2048;
/// Longest line of a handler's stdout or stderr logged as one line.
const MAX_LOG_LINE: usize = 16 * 1024;

/// A call sent to the process and not answered yet.
struct Pending {
    reply: oneshot::Sender<FnResult>,
    ctx: Ctx,
    function: String,
}

#[derive(Default)]
struct State {
    pending: HashMap<u64, Pending>,
    /// Calls whose caller stopped waiting (timeout, cancellation): a late
    /// reply to them is dropped, not a protocol error.
    abandoned: HashSet<u64>,
    dead: bool,
    /// Why the worker stops this process (the first reason counts).
    kill_reason: Option<String>,
}

/// A live handler process: what calls are sent to and replies come from.
pub(crate) struct Live {
    pub(crate) index: usize,
    pub(crate) pid: u32,
    state: Mutex<State>,
    /// Calls waiting for a reply, abandoned ones included: how busy it is.
    load: AtomicUsize,
    output: Arc<Output>,
    /// Wakes the supervisor when the process must be killed.
    pub(crate) kill_requested: Notify,
    stderr_tail: Mutex<VecDeque<u8>>,
    /// The pool's "a process is ready" signal: also given when this one
    /// takes calls again after its abandoned ones ended.
    ready: Arc<Notify>,
}

impl Live {
    pub(crate) fn new(index: usize, pid: u32, output: Arc<Output>, ready: Arc<Notify>) -> Live {
        Live {
            ready,
            index,
            pid,
            state: Mutex::new(State::default()),
            load: AtomicUsize::new(0),
            output,
            kill_requested: Notify::new(),
            stderr_tail: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn load(&self) -> usize {
        self.load.load(Ordering::Relaxed)
    }

    /// False while a call the worker gave up on still runs: the process may
    /// be stuck in it (and be killed), so new calls go elsewhere or wait.
    pub(crate) fn accepting(&self) -> bool {
        self.state.lock().abandoned.is_empty()
    }

    /// Sends a call; the line comes back if the process has died meanwhile.
    pub(crate) fn submit(
        &self,
        id: u64,
        function: &str,
        ctx: &Ctx,
        line: Vec<u8>,
    ) -> Result<oneshot::Receiver<FnResult>, Vec<u8>> {
        let (reply, rx) = oneshot::channel();
        let mut state = self.state.lock();
        if state.dead {
            return Err(line);
        }
        state.pending.insert(
            id,
            Pending {
                reply,
                ctx: ctx.clone(),
                function: function.to_string(),
            },
        );
        self.load.fetch_add(1, Ordering::Relaxed);
        // Under the lock: a death in between would miss this call.
        if let Err(back) = self.output.send(line) {
            state.pending.remove(&id);
            self.load.fetch_sub(1, Ordering::Relaxed);
            return Err(back);
        }
        Ok(rx)
    }

    /// The caller of call `id` stopped waiting. The handler is told; if
    /// the call has not ended `grace` later, the process is killed: it is
    /// stuck in it, and every later call would queue behind it.
    pub(crate) fn abandon(self: &Arc<Self>, id: u64, grace: Duration) {
        let function = {
            let mut state = self.state.lock();
            let Some(p) = state.pending.remove(&id) else {
                return;
            };
            state.abandoned.insert(id);
            p.function
        };
        let _ = self.output.send(protocol::cancel_line(id));
        let reason = format!(
            "did not end call {id} of '{function}' within {} ms after the worker stopped waiting for it (timeout or cancellation)",
            grace.as_millis()
        );
        let live = self.clone();
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    tokio::time::sleep(grace).await;
                    if live.state.lock().abandoned.contains(&id) {
                        live.kill(reason);
                    }
                });
            }
            Err(_) => live.kill(reason),
        }
    }

    /// Asks the supervisor to kill the process, saying why.
    pub(crate) fn kill(&self, reason: String) {
        let mut state = self.state.lock();
        if state.kill_reason.is_none() && !state.dead {
            state.kill_reason = Some(reason);
            self.kill_requested.notify_one();
        }
    }

    /// Closes the process's input: a handler exits at its end.
    pub(crate) fn close_input(&self) {
        self.output.close();
    }

    pub(crate) fn kill_reason(&self) -> Option<String> {
        self.state.lock().kill_reason.clone()
    }

    /// The process is gone: every call it had fails (retryable) with
    /// `reason`, and it takes no more. Returns how many calls failed.
    pub(crate) fn die(&self, reason: &str) -> usize {
        let mut state = self.state.lock();
        state.dead = true;
        state.abandoned.clear();
        let pending: Vec<(u64, Pending)> = state.pending.drain().collect();
        self.load.store(0, Ordering::Relaxed);
        drop(state);
        let tail = self.stderr_tail();
        let stderr = if tail.is_empty() {
            String::new()
        } else {
            format!("; its stderr ended with: {tail}")
        };
        let failed = pending.len();
        for (id, p) in pending {
            let message = format!(
                "handler process {} (pid {}) {reason} while running '{}' (call {id}){stderr}",
                self.index, self.pid, p.function
            );
            let _ = p.reply.send(Err(FnError::retryable(message)));
        }
        failed
    }

    /// The call ids waiting on this process, for log lines.
    pub(crate) fn calls(&self) -> String {
        let state = self.state.lock();
        let mut ids: Vec<u64> = state.pending.keys().copied().collect();
        ids.sort_unstable();
        ids.iter().map(u64::to_string).collect::<Vec<_>>().join(",")
    }

    pub(crate) fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock();
        let bytes: Vec<u8> = tail.iter().copied().collect();
        String::from_utf8_lossy(&bytes).trim().to_string()
    }

    fn note_stderr(&self, line: &[u8]) {
        let mut tail = self.stderr_tail.lock();
        tail.extend(line);
        tail.push_back(b'\n');
        let excess = tail.len().saturating_sub(STDERR_TAIL);
        tail.drain(..excess);
    }

    fn send(&self, line: Vec<u8>) {
        // Fails only once the process is gone; its calls fail then anyway.
        let _ = self.output.send(line);
    }

    /// A result or error for call `id`.
    fn reply(&self, id: u64, result: FnResult, line: &[u8]) -> Result<(), String> {
        let mut state = self.state.lock();
        match state.pending.remove(&id) {
            Some(p) => {
                self.load.fetch_sub(1, Ordering::Relaxed);
                drop(state);
                let _ = p.reply.send(result);
                Ok(())
            }
            None if state.abandoned.remove(&id) => {
                self.load.fetch_sub(1, Ordering::Relaxed);
                let accepting = state.abandoned.is_empty();
                drop(state);
                tracing::debug!(
                    process = self.index,
                    call = id,
                    "reply to an abandoned call dropped"
                );
                if accepting {
                    self.ready.notify_waiters();
                }
                Ok(())
            }
            None => Err(format!(
                "replied for call {id}, which is not waiting for a reply: {}",
                protocol::quote(line)
            )),
        }
    }

    /// The context of call `id` for a request it makes: `Ok(None)` when the
    /// call was abandoned (the request is answered with an error).
    fn requester(&self, id: u64, line: &[u8]) -> Result<Option<Ctx>, String> {
        let state = self.state.lock();
        if let Some(p) = state.pending.get(&id) {
            return Ok(Some(p.ctx.clone()));
        }
        if state.abandoned.contains(&id) {
            return Ok(None);
        }
        Err(format!(
            "made a request for call {id}, which is not running: {}",
            protocol::quote(line)
        ))
    }
}

/// Reads the process's messages until it stops writing or breaks the
/// protocol (then it is killed with the reason). The hello's functions
/// go to `hello`.
pub(crate) async fn read_loop<R: AsyncRead + Unpin>(
    live: Arc<Live>,
    reader: R,
    hello: oneshot::Sender<Vec<String>>,
) {
    let mut lines = LineReader::new(reader, MAX_LINE - 1);
    let mut hello = Some(hello);
    loop {
        let line = match lines.next().await {
            Ok(Some(Line::Text(line))) => line,
            Ok(Some(Line::TooLong(head))) => {
                live.kill(format!(
                    "wrote a line over the {MAX_LINE}-byte limit, starting {}",
                    protocol::quote(&head)
                ));
                return;
            }
            Ok(None) => return,
            Err(e) => {
                live.kill(format!("could not be read from: {e}"));
                return;
            }
        };
        if let Err(why) = handle(&live, &line, &mut hello) {
            live.kill(why);
            return;
        }
    }
}

fn handle(
    live: &Arc<Live>,
    line: &[u8],
    hello: &mut Option<oneshot::Sender<Vec<String>>>,
) -> Result<(), String> {
    let message = protocol::parse(line).map_err(|why| format!("wrote {why}"))?;
    if hello.is_some() && !matches!(message, FromHandler::Hello { .. }) {
        return Err(format!("wrote before its hello: {}", protocol::quote(line)));
    }
    match message {
        FromHandler::Hello { functions } => {
            let Some(tx) = hello.take() else {
                return Err(format!("said hello twice: {}", protocol::quote(line)));
            };
            let _ = tx.send(functions);
            Ok(())
        }
        FromHandler::Result { id, value } => live.reply(id, Ok(value), line),
        FromHandler::Error {
            id,
            message,
            retryable,
        } => {
            let error = if retryable {
                FnError::retryable(message)
            } else {
                FnError::permanent(message)
            };
            live.reply(id, Err(error), line)
        }
        FromHandler::Progress { id, units } => {
            if let Some(ctx) = live.requester(id, line)? {
                ctx.progress(units);
            }
            Ok(())
        }
        FromHandler::Child {
            id,
            req,
            call,
            weight,
        } => {
            let ctx = live.requester(id, line)?;
            answer(live, id, req, ctx, move |ctx| async move {
                ctx.child(call, weight).await
            });
            Ok(())
        }
        FromHandler::Spawn { id, req, spec } => {
            let ctx = live.requester(id, line)?;
            answer(live, id, req, ctx, move |ctx| async move {
                ctx.spawn(*spec).await
            });
            Ok(())
        }
    }
}

/// Runs a call's request off the read loop (it waits for the engine) and
/// sends the answer: the new node's id, or the error's message.
fn answer<F, Fut>(live: &Arc<Live>, id: u64, req: u64, ctx: Option<Ctx>, request: F)
where
    F: FnOnce(Ctx) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<u64, FnError>> + Send,
{
    let live = live.clone();
    tokio::spawn(async move {
        let result = match ctx {
            Some(ctx) => request(ctx).await.map(serde_json::Value::from),
            None => Err(FnError::retryable(format!(
                "call {id} is no longer running (timed out or cancelled)"
            ))),
        };
        live.send(protocol::answer_line(id, req, result));
    });
}

/// Logs what the process prints on `stream` (its stdout or stderr), one
/// log line per line, with the calls it is running.
pub(crate) async fn log_loop<R: AsyncRead + Unpin>(
    live: Arc<Live>,
    stream: &'static str,
    reader: R,
) {
    let mut lines = LineReader::new(reader, MAX_LOG_LINE);
    while let Ok(Some(line)) = lines.next().await {
        let (text, cut) = match &line {
            Line::Text(t) => (t.as_slice(), ""),
            Line::TooLong(head) => (head.as_slice(), " [line cut]"),
        };
        if stream == "stderr" {
            live.note_stderr(text);
        }
        tracing::info!(
            target: "kontinuum_worker::handler",
            process = live.index,
            pid = live.pid,
            call = %live.calls(),
            stream,
            "{}{cut}",
            String::from_utf8_lossy(text).trim_end()
        );
    }
}
