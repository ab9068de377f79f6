//! `kontinuum-operator`: engine, worker API and controllers in one process.

use clap::Parser;
use mimalloc::MiMalloc;
use std::process::ExitCode;

#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

enum Command {
    Operate(Box<kontinuum_operator::Flags>),
    Uninstall(kontinuum_operator::uninstall::UninstallFlags),
}

fn main() -> ExitCode {
    // `kontinuum-operator uninstall ...`: a command of its own (the chart's
    // pre-delete hook), with its own flags; anything else runs the operator.
    let uninstalling = std::env::args_os().nth(1).is_some_and(|a| a == "uninstall");
    let command = if uninstalling {
        let args = std::env::args_os().skip(1);
        Command::Uninstall(kontinuum_operator::uninstall::UninstallFlags::parse_from(
            args,
        ))
    } else {
        Command::Operate(Box::new(kontinuum_operator::Flags::parse()))
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(kontinuum_operator::logging::directives(
                std::env::var("RUST_LOG").ok().as_deref(),
            ))
            .unwrap_or_else(|_| kontinuum_operator::logging::DEFAULT.into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: not in `kubectl logs` or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kontinuum-operator: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let flags = match command {
        Command::Operate(flags) => *flags,
        Command::Uninstall(flags) => {
            return match runtime.block_on(kontinuum_operator::uninstall::uninstall(flags)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("kontinuum-operator uninstall: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    let restarts_in_place = flags.restarts_in_place();
    let outcome = runtime.block_on(kontinuum_operator::run(flags));
    // Nothing of this run may go on: its tasks end with the runtime. After
    // an error (leadership lost) without waiting for anything.
    match &outcome {
        Ok(()) => runtime.shutdown_timeout(std::time::Duration::from_secs(5)),
        Err(_) => runtime.shutdown_background(),
    }
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kontinuum-operator: {e}");
            if restarts_in_place && let Some(delay) = e.restart_delay() {
                restart_in_place(delay);
            }
            ExitCode::FAILURE
        }
    }
}

/// Starts over as a new process image with the same arguments and
/// environment: every file, socket and lock of this run goes with the old
/// image (all are opened close-on-exec), as after a crash, and the new run
/// is a candidate for the Lease again. Returns only if that fails.
fn restart_in_place(delay: std::time::Duration) {
    use std::os::unix::process::CommandExt;
    if !delay.is_zero() {
        eprintln!("kontinuum-operator: starting over in {delay:?} (--restart-in-place)");
        std::thread::sleep(delay);
    } else {
        eprintln!("kontinuum-operator: starting over as a candidate (--restart-in-place)");
    }
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("kontinuum-operator: cannot find its own executable to start over: {e}");
            return;
        }
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .exec();
    eprintln!("kontinuum-operator: cannot start over: {error}");
}
