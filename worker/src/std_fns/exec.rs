//! std.exec: runs a program, so any language can be a worker language.
//!
//! `{command: [argv..], stdin?: any, env?: {..}, timeoutMs?}`. `stdin` is
//! written as is when it is a string, else as JSON; without it the program's
//! stdin is empty. `env` adds variables to the worker's environment. The
//! result is stdout parsed as JSON, else stdout as a string, with trailing
//! newlines trimmed. A non-zero exit fails (retryable) with the exit code and
//! the last ~2 KiB of stderr. The program is killed on timeout, on
//! cancellation, and when the task is dropped.

use crate::args::Args;
use crate::ctx::Ctx;
use crate::error::FnError;
use crate::invocation::FnResult;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// How much of stderr a failure message carries.
const STDERR_TAIL: usize = 2048;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecArgs {
    command: Vec<String>,
    #[serde(default)]
    stdin: Option<Value>,
    #[serde(default)]
    env: Map<String, Value>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

pub(super) async fn exec(ctx: Ctx, args: Args<'static>) -> FnResult {
    let a: ExecArgs = args.parse()?;
    let Some((program, argv)) = a.command.split_first() else {
        return Err(FnError::bad_arg(
            "command",
            "must name a program: [program, args...]",
        ));
    };
    let mut cmd = Command::new(program);
    cmd.args(argv)
        .stdin(if a.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (name, value) in &a.env {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            other => return Err(super::wrong_type(&format!("env.{name}"), "a string", other)),
        };
        cmd.env(name, text);
    }
    let input = match a.stdin {
        None => Vec::new(),
        Some(Value::String(s)) => s.into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };

    let mut child = cmd.spawn().map_err(|e| {
        let message = format!("std.exec: cannot run '{program}': {e}");
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                FnError::permanent(message)
            }
            _ => FnError::retryable(message),
        }
    })?;
    let stdin = child.stdin.take();
    let write = async move {
        if let Some(mut pipe) = stdin {
            // A program that exits without reading its input is not an error.
            let _ = pipe.write_all(&input).await;
        }
    };
    // Dropping this future drops the child, which kill_on_drop kills.
    let run = async {
        let ((), output) = tokio::join!(write, child.wait_with_output());
        output
    };
    let limit = async {
        match a.timeout_ms {
            Some(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            None => std::future::pending().await,
        }
    };
    let output = tokio::select! {
        output = run => output.map_err(|e| FnError::retryable(format!("std.exec: '{program}': {e}")))?,
        () = limit => {
            return Err(FnError::retryable(format!(
                "std.exec: '{program}' timed out after {} ms and was killed",
                a.timeout_ms.unwrap_or(0)
            )));
        }
        () = ctx.cancelled() => return Err(FnError::retryable("cancelled")),
    };
    if !output.status.success() {
        return Err(FnError::retryable(format!(
            "std.exec: '{program}' {}: {}",
            describe_exit(output.status),
            stderr_tail(&output.stderr)
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let text = stdout.trim_end_matches(['\n', '\r']);
    Ok(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
}

pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    format!("failed ({status})")
}

fn stderr_tail(stderr: &[u8]) -> String {
    let cut = stderr.len().saturating_sub(STDERR_TAIL);
    let tail = String::from_utf8_lossy(&stderr[cut..]);
    let tail = tail.trim();
    if tail.is_empty() {
        "(no stderr)".to_string()
    } else if cut > 0 {
        format!("...{tail}")
    } else {
        tail.to_string()
    }
}

#[cfg(test)]
mod tests {
    use crate::args::Args;
    use crate::ctx::Ctx;
    use crate::invocation::FnResult;
    use crate::std_fns::std_registry;
    use serde_json::{Value, json};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    async fn exec(args: Value) -> FnResult {
        let ctx = Ctx::detached(Arc::new(std_registry()));
        let map = args.as_object().cloned().unwrap();
        ctx.invoke("std.exec", Args::new(&map)).resolve().await
    }

    #[tokio::test]
    async fn stdout_is_json_or_a_string() {
        let got = exec(json!({"command": ["echo", "{\"a\": [1, 2]}"]}))
            .await
            .unwrap();
        assert_eq!(got, json!({"a": [1, 2]}));
        let got = exec(json!({"command": ["echo", "hello world"]}))
            .await
            .unwrap();
        assert_eq!(got, json!("hello world"));
        let got = exec(json!({"command": ["printf", "42\n\n"]}))
            .await
            .unwrap();
        assert_eq!(got, json!(42));
    }

    #[tokio::test]
    async fn stdin_and_env_reach_the_program() {
        let got = exec(json!({"command": ["cat"], "stdin": "raw text\n"}))
            .await
            .unwrap();
        assert_eq!(got, json!("raw text"));
        let got = exec(json!({"command": ["cat"], "stdin": {"x": 1}}))
            .await
            .unwrap();
        assert_eq!(got, json!({"x": 1}));
        let got =
            exec(json!({"command": ["sh", "-c", "echo $FOO-$N"], "env": {"FOO": "bar", "N": 3}}))
                .await
                .unwrap();
        assert_eq!(got, json!("bar-3"));
    }

    #[tokio::test]
    async fn nonzero_exit_fails_with_code_and_stderr_tail() {
        let script = "head -c 5000 /dev/zero | tr '\\0' 'x' >&2; echo END >&2; exit 3";
        let e = exec(json!({"command": ["sh", "-c", script]}))
            .await
            .unwrap_err();
        assert!(!e.permanent);
        assert!(e.message.contains("exited with code 3"), "{}", e.message);
        assert!(e.message.ends_with("END"), "{}", e.message);
        assert!(e.message.len() < 2300, "{}", e.message.len());
    }

    #[tokio::test]
    async fn timeout_kills_the_program() {
        let t = Instant::now();
        let e = exec(json!({"command": ["sleep", "30"], "timeoutMs": 100}))
            .await
            .unwrap_err();
        assert!(
            e.message.contains("timed out after 100 ms"),
            "{}",
            e.message
        );
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn cancellation_kills_the_program() {
        let ctx = Ctx::detached(Arc::new(std_registry()));
        let map = json!({"command": ["sleep", "30"]})
            .as_object()
            .cloned()
            .unwrap();
        let pending = ctx.invoke("std.exec", Args::new(&map));
        let c = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            c.cancel();
        });
        let e = tokio::time::timeout(Duration::from_secs(5), pending.resolve())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.message, "cancelled");
    }

    #[tokio::test]
    async fn bad_arguments_are_permanent_and_named() {
        let e = exec(json!({"command": "ls"})).await.unwrap_err();
        assert!(e.permanent);
        assert!(e.message.starts_with("argument 'command'"), "{}", e.message);
        let e = exec(json!({"command": ["ls", 3]})).await.unwrap_err();
        assert!(
            e.message.starts_with("argument 'command[1]'"),
            "{}",
            e.message
        );
        let e = exec(json!({"command": []})).await.unwrap_err();
        assert!(e.message.starts_with("argument 'command'"), "{}", e.message);
        let e = exec(json!({"command": ["true"], "env": {"A": [1]}}))
            .await
            .unwrap_err();
        assert!(e.message.starts_with("argument 'env.A'"), "{}", e.message);
        let e = exec(json!({"command": ["true"], "timeoutMs": "soon"}))
            .await
            .unwrap_err();
        assert!(
            e.message.starts_with("argument 'timeoutMs'"),
            "{}",
            e.message
        );
        let e = exec(json!({"command": ["/nonexistent/program"]}))
            .await
            .unwrap_err();
        assert!(e.permanent);
        assert!(
            e.message.contains("cannot run '/nonexistent/program'"),
            "{}",
            e.message
        );
    }
}
