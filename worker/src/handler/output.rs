//! Writing to a handler process: a line goes straight into the pipe when
//! nothing is queued before it and the pipe takes it whole (no task switch
//! on the way); otherwise it queues, in order, for the writer loop, which
//! waits for the pipe to drain.

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::sync::Arc;
use tokio::net::unix::pipe;
use tokio::sync::Notify;

/// The process's input (its fd 3).
pub(crate) struct Output {
    state: Mutex<State>,
    /// Wakes the writer loop: something was queued, or the input closes.
    wake: Notify,
}

struct State {
    /// None once closed (the process is stopping, or gone).
    pipe: Option<Arc<pipe::Sender>>,
    queue: VecDeque<Vec<u8>>,
    /// How much of the first queued line is written already.
    written: usize,
}

impl Output {
    pub(crate) fn new(pipe: pipe::Sender) -> Output {
        Output {
            state: Mutex::new(State {
                pipe: Some(Arc::new(pipe)),
                queue: VecDeque::new(),
                written: 0,
            }),
            wake: Notify::new(),
        }
    }

    /// Sends a line; it comes back if the input is closed or broken.
    pub(crate) fn send(&self, line: Vec<u8>) -> Result<(), Vec<u8>> {
        let mut state = self.state.lock();
        let Some(pipe) = state.pipe.clone() else {
            return Err(line);
        };
        if !state.queue.is_empty() {
            state.queue.push_back(line);
            return Ok(());
        }
        match pipe.try_write(&line) {
            Ok(n) if n == line.len() => return Ok(()),
            Ok(n) => state.written = n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => state.written = 0,
            Err(_) => {
                // Broken: the process is gone, and its supervisor will say so.
                state.pipe = None;
                return Err(line);
            }
        }
        state.queue.push_back(line);
        drop(state);
        self.wake.notify_one();
        Ok(())
    }

    /// Closes the input: the handler reads its end and should exit.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.pipe = None;
        state.queue.clear();
        drop(state);
        self.wake.notify_one();
    }
}

/// Writes what [`Output::send`] queued until the input is closed.
pub(crate) async fn write_loop(output: Arc<Output>) {
    loop {
        output.wake.notified().await;
        loop {
            let pipe = {
                let mut state = output.state.lock();
                let Some(pipe) = state.pipe.clone() else {
                    return;
                };
                let written = state.written;
                let Some(front) = state.queue.front() else {
                    break;
                };
                match pipe.try_write(&front[written..]) {
                    Ok(n) if written + n == front.len() => {
                        state.queue.pop_front();
                        state.written = 0;
                        continue;
                    }
                    Ok(n) => {
                        state.written += n;
                        continue;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => pipe,
                    Err(_) => {
                        state.pipe = None;
                        return;
                    }
                }
            };
            // Full: wait until the process reads (or the input closes).
            tokio::select! {
                ready = pipe.writable() => if ready.is_err() { return },
                () = output.wake.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn lines_arrive_whole_and_in_order_past_a_full_pipe() {
        let (tx, mut rx) = pipe::pipe().unwrap();
        let output = Arc::new(Output::new(tx));
        tokio::spawn(write_loop(output.clone()));
        // Far more than a pipe holds (64 KiB), in lines of varied sizes.
        let mut want = Vec::new();
        for i in 0..2000 {
            let line = format!("{i}:{}\n", "x".repeat(i % 700)).into_bytes();
            want.extend_from_slice(&line);
            output.send(line).unwrap();
        }
        let mut got = vec![0; want.len()];
        rx.read_exact(&mut got).await.unwrap();
        assert!(got == want, "lines arrived out of order or cut");
        output.close();
        assert!(output.send(b"late\n".to_vec()).is_err());
        let mut rest = Vec::new();
        rx.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "nothing after close, and the end is seen");
    }
}
