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

/// Ctrl-C and SIGTERM, watched from the moment this is made (inside a
/// tokio runtime): a signal that comes before anyone waits is kept, so a
/// command that makes this before creating anything to clean up never dies
/// of a signal with something left behind.
pub struct Signals {
    #[cfg(unix)]
    watched: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    pub fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let watched = signal(SignalKind::interrupt())
                .and_then(|int| Ok((int, signal(SignalKind::terminate())?)));
            match watched {
                Ok(watched) => Signals {
                    watched: Some(watched),
                },
                Err(e) => {
                    eprintln!("warning: cannot watch for SIGTERM ({e}); Ctrl-C still stops");
                    Signals { watched: None }
                }
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Resolves at the next Ctrl-C or SIGTERM.
    pub async fn recv(&mut self) -> Stop {
        #[cfg(unix)]
        if let Some((int, term)) = &mut self.watched {
            return tokio::select! {
                _ = int.recv() => Stop::Interrupt,
                _ = term.recv() => Stop::Terminate,
            };
        }
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
