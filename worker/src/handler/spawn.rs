//! Starting one handler process: its command line, its environment, and the
//! two pipes of the protocol as its fds 3 and 4. Ordinary output (fd 1 and
//! fd 2) is the worker's log, never the protocol, so no print of user code
//! (nor of a library or a subprocess it starts) can be taken for a message.

use super::protocol::{MAX_LINE, PROTOCOL};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::process::Stdio;
use tokio::net::unix::pipe;
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// The fd a handler reads the worker's messages from.
pub const IN_FD: RawFd = 3;
/// The fd a handler writes its messages to.
pub const OUT_FD: RawFd = 4;

/// A started handler process and the worker's ends of its pipes.
pub(crate) struct Spawned {
    pub(crate) child: Child,
    /// Calls, answers and cancels go here (the handler's fd 3).
    pub(crate) to_handler: pipe::Sender,
    /// Hello, results and requests come from here (the handler's fd 4).
    pub(crate) from_handler: pipe::Receiver,
    pub(crate) stdout: Option<ChildStdout>,
    pub(crate) stderr: Option<ChildStderr>,
}

/// Splits a command line into words the way a shell would for simple
/// cases: blanks separate words, '…' and "…" quote, \ escapes (outside
/// single quotes). No variables, globs or pipes: there is no shell.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(w) = word.take() {
                    words.push(w);
                }
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.push(c),
                        None => return Err("a single quote is not closed".into()),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$' | '`')) => w.push(c),
                            Some(c) => {
                                w.push('\\');
                                w.push(c);
                            }
                            None => return Err("a double quote is not closed".into()),
                        },
                        Some(c) => w.push(c),
                        None => return Err("a double quote is not closed".into()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => word.get_or_insert_with(String::new).push(c),
                None => return Err("the line ends with a lone backslash".into()),
            },
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word);
    if words.is_empty() {
        return Err("the command is empty".into());
    }
    Ok(words)
}

/// Starts `argv` as handler process `index`. It gets the worker's
/// environment plus the protocol's variables, an empty stdin, and its own
/// process group, so a Ctrl-C meant for the worker does not interrupt the
/// calls the worker is still finishing.
pub(crate) fn spawn(argv: &[String], index: usize) -> std::io::Result<Spawned> {
    let (program, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("the command is empty"))?;
    let (calls_read, calls_write) = std::io::pipe()?;
    let (replies_read, replies_write) = std::io::pipe()?;
    let calls_read = OwnedFd::from(calls_read);
    let replies_write = OwnedFd::from(replies_write);
    let (child_in, child_out) = (calls_read.as_raw_fd(), replies_write.as_raw_fd());
    let mut command = Command::new(program);
    command
        .args(args)
        .env("KONTINUUM_HANDLER_PROTOCOL", PROTOCOL.to_string())
        .env("KONTINUUM_HANDLER_IN_FD", IN_FD.to_string())
        .env("KONTINUUM_HANDLER_OUT_FD", OUT_FD.to_string())
        .env("KONTINUUM_HANDLER_MAX_LINE", MAX_LINE.to_string())
        .env("KONTINUUM_HANDLER_PROCESS", index.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the child between fork and exec and
    // calls only fcntl and dup2, which are async-signal-safe; it touches
    // no memory the parent's other threads could hold locked.
    unsafe {
        command.pre_exec(move || place_fds(child_in, child_out));
    }
    let mut child = command.spawn()?;
    // The child has its copies; the worker's would keep the pipes open
    // after the child is gone.
    drop((calls_read, replies_write));
    Ok(Spawned {
        to_handler: pipe::Sender::from_owned_fd(OwnedFd::from(calls_write))?,
        from_handler: pipe::Receiver::from_owned_fd(OwnedFd::from(replies_read))?,
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
        child,
    })
}

/// In the child: the protocol's pipes as fds 3 and 4, inherited by the
/// program. Both are first copied above 10 so that placing one cannot
/// overwrite the other (either may already be 3 or 4).
fn place_fds(child_in: RawFd, child_out: RawFd) -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(r)
        }
    };
    // SAFETY: plain fd syscalls on fds this process owns.
    unsafe {
        let a = check(libc::fcntl(child_in, libc::F_DUPFD_CLOEXEC, 10))?;
        let b = check(libc::fcntl(child_out, libc::F_DUPFD_CLOEXEC, 10))?;
        // dup2 onto another number clears close-on-exec on the copy.
        check(libc::dup2(a, IN_FD))?;
        check(libc::dup2(b, OUT_FD))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::split_command;

    #[test]
    fn command_lines_split_like_a_shell_without_one() {
        let ok = |s: &str| split_command(s).unwrap();
        assert_eq!(ok("python3 app.py"), ["python3", "app.py"]);
        assert_eq!(
            ok("  python3   -u  'my app.py' "),
            ["python3", "-u", "my app.py"]
        );
        assert_eq!(
            ok(r#"sh -c "echo \"hi\" \$HOME""#),
            ["sh", "-c", "echo \"hi\" $HOME"]
        );
        assert_eq!(ok(r"a\ b c''d"), ["a b", "cd"]);
        assert_eq!(ok("x ''"), ["x", ""]);
        for (bad, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("python3 'app.py", "single quote"),
            ("python3 \"app.py", "double quote"),
            ("python3 \\", "backslash"),
        ] {
            let err = split_command(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
