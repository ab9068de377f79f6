//! The signals that stop `run` and `serve`: Ctrl-C (SIGINT) and SIGTERM,
//! treated alike so that `kill PID` cleans up as Ctrl-C does.

/// Which signal asked the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Interrupt,
    Terminate,
}

impl Stop {
    /// The shell's convention: 128 + the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Stop::Interrupt => 130,
            Stop::Terminate => 143,
        }
    }
}

/// Resolves at the first Ctrl-C or SIGTERM.
pub async fn stop_signal() -> Stop {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => Stop::Interrupt,
                    _ = term.recv() => Stop::Terminate,
                }
            }
            Err(e) => {
                eprintln!("warning: cannot watch for SIGTERM ({e}); Ctrl-C still stops");
                let _ = tokio::signal::ctrl_c().await;
                Stop::Interrupt
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        Stop::Interrupt
    }
}

/// `--data` must name a directory (created when missing); a regular file
/// there would otherwise surface as "File exists (os error 17)".
pub fn check_data_dir(path: &std::path::Path) -> Result<(), String> {
    if path.exists() && !path.is_dir() {
        return Err(format!(
            "--data {} is a file, not a directory: name a directory for the store (it is created if missing)",
            path.display()
        ));
    }
    Ok(())
}
