//! `kontinuum`: run manifests on the embedded engine, serve the engine over
//! HTTP and talk to a server (submit, get, tree, cancel), print the CRDs.

// mimalloc: the engine allocates many small records per task; glibc's
// allocator took a quarter of the CPU in the no-op benchmark.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod error;
#[cfg(test)]
mod fuzz_tests;
mod load;
mod output;
mod progress;
mod remote;
mod run;
mod serve;
mod signals;
mod submit;
mod tree;
mod yaml;

use clap::{Parser, Subcommand};
use error::CliError;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "kontinuum",
    version,
    about = "Distributed first-class functions: tasks, continuations and hierarchical futures"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run manifests to completion on the embedded engine with in-process
    /// workers, then print each object with its final status.
    Run(run::RunArgs),
    /// Serve the engine and its worker API over HTTP until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Validate manifests like `run` and submit them to a server.
    Submit(submit::SubmitArgs),
    /// List objects of a kind, or show one, from a server.
    Get(remote::GetArgs),
    /// Draw an object's future tree from a server, with per-node progress.
    Tree(tree::TreeArgs),
    /// Cancel an object's whole tree on a server.
    Cancel(remote::CancelArgs),
    /// Print the CustomResourceDefinitions (the YAML that crds/ holds).
    Crds {
        /// Write one file per CRD into this directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => local(run::run(args)),
        Command::Crds { dir } => local(crds(dir.as_deref()).map(|()| ExitCode::SUCCESS)),
        Command::Serve(args) => remote(serve::serve(args)),
        Command::Submit(args) => remote(submit::submit(args)),
        Command::Get(args) => remote(remote::get(args)),
        Command::Tree(args) => remote(tree::tree(args)),
        Command::Cancel(args) => remote(remote::cancel(args)),
    }
}

fn remote(result: Result<ExitCode, remote::RemoteError>) -> ExitCode {
    result.unwrap_or_else(|e| e.report())
}

fn local(result: Result<ExitCode, CliError>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            if let CliError::Invalid(problems) = &e {
                for problem in problems {
                    eprintln!("{problem}");
                }
            }
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn crds(dir: Option<&Path>) -> Result<(), CliError> {
    let Some(dir) = dir else {
        let yaml = kontinuum_api::crds::crds_yaml().map_err(|e| CliError::Crds(e.to_string()))?;
        print!("{yaml}");
        return Ok(());
    };
    let files = kontinuum_api::crds::crd_files().map_err(|e| CliError::Crds(e.to_string()))?;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CliError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (name, yaml) in files {
        let path = dir.join(name);
        std::fs::write(&path, yaml).map_err(io(&path))?;
    }
    Ok(())
}
