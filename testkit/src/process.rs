//! Child processes that never outlive their test.

use std::ffi::OsStr;
use std::process::{Child, Command, ExitStatus, Output, Stdio};

/// A child process, killed (and reaped) when dropped.
pub struct Process {
    /// `None` once handed out by [`Process::wait_with_output`].
    child: Option<Child>,
    id: u32,
}

impl Process {
    pub fn spawn(command: &mut Command) -> Process {
        let child = command.spawn().expect("the test's child process starts");
        Process {
            id: child.id(),
            child: Some(child),
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// SIGTERM through the shell's builtin `kill` (no procps needed).
    pub fn sigterm(&self) {
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!("kill -TERM {}", self.id))
            .status()
            .expect("sh runs");
        assert!(status.success(), "kill -TERM {}", self.id);
    }

    /// SIGKILL, and waits for the process to go.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> std::io::Result<ExitStatus> {
        match self.child.as_mut() {
            Some(child) => child.wait(),
            None => Err(std::io::Error::other("the process was already waited for")),
        }
    }

    /// The exit status, if the process has exited.
    pub fn try_wait(&mut self) -> std::io::Result<Option<ExitStatus>> {
        match self.child.as_mut() {
            Some(child) => child.try_wait(),
            None => Err(std::io::Error::other("the process was already waited for")),
        }
    }

    /// Waits for the process to exit and collects what it printed to the
    /// pipes it was given.
    pub fn wait_with_output(mut self) -> std::io::Result<Output> {
        match self.child.take() {
            Some(child) => child.wait_with_output(),
            None => Err(std::io::Error::other("the process was already waited for")),
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The command for a worker binary (`kontinuum-worker`, or one built on the
/// SDK) serving `pool` of the server at `url`, `args` after those, its
/// output discarded; change it further before [`Process::spawn`].
pub fn worker(binary: impl AsRef<OsStr>, url: &str, pool: &str, args: &[&str]) -> Command {
    let mut command = Command::new(binary);
    command
        .args(["--server", url, "--pool", pool])
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}
