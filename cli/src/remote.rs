//! What the commands that talk to a running server share: `--server` and
//! `--token-file`, their errors and exit codes; and the two smallest of
//! them, `kontinuum get` and `kontinuum cancel`.

use crate::error::Diagnostic;
use crate::output::{self, Format};
use kontinuum_api::endpoints::ObjectView;
use kontinuum_api::{DEFAULT_NAMESPACE, ObjectId, ObjectIdError, ObjectKind};
use kontinuum_server::{Client, ClientError, ServeError};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// Where the server is and how to prove who we are.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The server's URL (`kontinuum serve` listens on http://127.0.0.1:7070).
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// A file holding the server's bearer token.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl ServerArgs {
    pub fn client(&self) -> Result<Client, RemoteError> {
        let token = match &self.token_file {
            Some(path) => Some(kontinuum_server::token_from_file(path)?),
            None => None,
        };
        Ok(Client::new(&self.server, token)?)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// Bad manifests found before anything was sent.
    #[error("{} problem(s) in the input; nothing was submitted", .0.len())]
    Invalid(Vec<Diagnostic>),
    /// The server found the manifests invalid: one line per problem.
    #[error("the server rejected the manifests; nothing was submitted")]
    Rejected(Vec<String>),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the store at {} is in use by another process (another kontinuum serve or run?)", .0.display())]
    Busy(PathBuf),
    #[error("engine: {0}")]
    Engine(#[from] kontinuum_engine::EngineError),
}

impl RemoteError {
    /// 2 for input the CLI or the server rejected, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RemoteError::Invalid(_) | RemoteError::Rejected(_) | RemoteError::Usage(_) => 2,
            RemoteError::Serve(ServeError::TokenRequired(_) | ServeError::BadToken) => 2,
            RemoteError::Client(ClientError::BadUrl(_)) => 2,
            RemoteError::Client(ClientError::Api {
                status: 400 | 409, ..
            }) => 2,
            _ => 1,
        }
    }

    /// Prints the error (with every problem, and a hint where one helps).
    pub fn report(&self) -> ExitCode {
        match self {
            RemoteError::Invalid(problems) => problems.iter().for_each(|p| eprintln!("{p}")),
            RemoteError::Rejected(lines) => lines.iter().for_each(|l| eprintln!("{l}")),
            _ => {}
        }
        eprintln!("error: {self}");
        if let Some(hint) = self.hint() {
            eprintln!("hint: {hint}");
        }
        ExitCode::from(self.exit_code())
    }

    fn hint(&self) -> Option<&'static str> {
        match self {
            RemoteError::Client(ClientError::Api { status: 401, .. }) => {
                Some("pass the server's token with --token-file FILE")
            }
            RemoteError::Client(ClientError::Transport(_)) => {
                Some("is `kontinuum serve` running, and is --server its address?")
            }
            RemoteError::Serve(ServeError::TokenRequired(_)) => {
                Some("put a secret in a file and pass --token-file FILE, or listen on 127.0.0.1")
            }
            _ => None,
        }
    }
}

/// A current-thread runtime: these commands make a few calls and leave.
pub fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, RemoteError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(RemoteError::Runtime)?;
    Ok(runtime.block_on(f))
}

/// `task` or `future` for the spellings kubectl users type.
pub fn kind(word: &str) -> Result<ObjectKind, RemoteError> {
    word.parse()
        .map_err(|e: ObjectIdError| RemoteError::Usage(e.to_string()))
}

/// The namespace of `-n NS`, "default" without it.
#[derive(Debug, Clone, clap::Args)]
pub struct NamespaceArg {
    /// The namespace (default: "default"); NS/KIND/NAME names one too.
    #[arg(short = 'n', long = "namespace", value_name = "NS")]
    pub namespace: Option<String>,
}

impl NamespaceArg {
    pub fn or_default(&self) -> &str {
        self.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
    }
}

/// `NS/KIND/NAME`, or `KIND/NAME` in `-n NS` (KIND: task, kt, future, hf,
/// ...). A namespace in both that differ is an error rather than a guess.
pub fn object_id(text: &str, ns: &NamespaceArg) -> Result<ObjectId, RemoteError> {
    let id = match text.split('/').count() {
        2 | 3 => ObjectId::parse_in(text, ns.or_default())
            .map_err(|e| RemoteError::Usage(e.to_string()))?,
        _ => {
            return Err(RemoteError::Usage(format!(
                "'{text}' is not KIND/NAME or NS/KIND/NAME: write future/{text} or task/{text}"
            )));
        }
    };
    match &ns.namespace {
        Some(given) if *given != id.namespace => Err(RemoteError::Usage(format!(
            "'{text}' is in namespace '{}' but -n says '{given}'",
            id.namespace
        ))),
        _ => Ok(id),
    }
}

#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// task, tasks, kt, future, futures or hf (or KIND/NAME, NS/KIND/NAME).
    pub kind: String,
    /// One object; without it, every object of the kind.
    pub name: Option<String>,
    #[command(flatten)]
    pub namespace: NamespaceArg,
    /// List the kind in every namespace.
    #[arg(short = 'A', long = "all-namespaces", conflicts_with = "namespace")]
    pub all_namespaces: bool,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Output format (json and yaml as kubectl prints them).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn get(args: GetArgs) -> Result<ExitCode, RemoteError> {
    let one = match (args.kind.contains('/'), &args.name) {
        (true, None) => Some(object_id(&args.kind, &args.namespace)?),
        (true, Some(_)) => {
            return Err(RemoteError::Usage(
                "give KIND NAME or KIND/NAME, not both".into(),
            ));
        }
        (false, Some(name)) => Some(ObjectId::new(
            args.namespace.or_default(),
            kind(&args.kind)?,
            name.as_str(),
        )),
        (false, None) => None,
    };
    let kind = match &one {
        Some(_) => None,
        None => Some(kind(&args.kind)?),
    };
    let namespace = (!args.all_namespaces).then(|| args.namespace.or_default());
    let client = args.server.client()?;
    let views = block_on(async {
        match &one {
            Some(id) => {
                let mut view = client.get(id).await?;
                // One object: its whole result, also beyond the status's 4 KiB.
                whole_result(&client, id, &mut view.status).await?;
                Ok(vec![view])
            }
            None => client.list(kind, namespace).await,
        }
    })??;
    let objects: Vec<Value> = views.iter().map(view_value).collect();
    let text = match (one.is_some(), args.output) {
        (false, Format::Text) if objects.is_empty() => {
            eprintln!("No resources found.");
            String::new()
        }
        // kubectl prints a listing as a List even with one item.
        (false, Format::Json | Format::Yaml) => output::render(
            &[json!({"apiVersion": "v1", "kind": "List", "items": objects})],
            args.output,
        ),
        _ => output::render(&objects, args.output),
    };
    print_out(&text);
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
pub struct CancelArgs {
    /// The object: future/NAME or task/NAME (or NS/KIND/NAME).
    pub name: String,
    #[command(flatten)]
    pub namespace: NamespaceArg,
    #[command(flatten)]
    pub server: ServerArgs,
}

pub fn cancel(args: CancelArgs) -> Result<ExitCode, RemoteError> {
    let id = object_id(&args.name, &args.namespace)?;
    let name = id.short();
    let client = args.server.client()?;
    let view = block_on(client.cancel(&id))??;
    let text = match view.status["phase"].as_str() {
        Some(phase @ ("Succeeded" | "Failed" | "Merged")) => {
            format!("{name} was already {phase}: nothing to cancel\n")
        }
        _ => format!("{name} cancelled\n"),
    };
    print_out(&text);
    Ok(ExitCode::SUCCESS)
}

/// Puts the whole result into a status that holds only `resultRef` (the
/// status inlines at most 4 KiB), as `kontinuum run` prints it.
pub async fn whole_result(
    client: &Client,
    id: &ObjectId,
    status: &mut Value,
) -> Result<(), ClientError> {
    if status.get("resultRef").is_none() {
        return Ok(());
    }
    if let Some(whole) = client.result(id).await?
        && let Some(fields) = status.as_object_mut()
    {
        fields.insert("result".into(), whole);
        fields.remove("resultRef");
        fields.remove("resultTruncated");
    }
    Ok(())
}

pub fn view_value(view: &ObjectView) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

/// A closed pipe (`| head`) is not worth an error message.
pub fn print_out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: Option<&str>) -> NamespaceArg {
        NamespaceArg {
            namespace: n.map(String::from),
        }
    }

    #[test]
    fn names_and_kinds() {
        let id = |t: &str, n| object_id(t, &ns(n)).map(|i| i.to_string());
        assert_eq!(id("hf/x", None).unwrap(), "default/future/x");
        assert_eq!(id("task/y", Some("team")).unwrap(), "team/task/y");
        assert_eq!(id("team/kt/y", None).unwrap(), "team/task/y");
        assert_eq!(id("team/kt/y", Some("team")).unwrap(), "team/task/y");
        assert!(id("team/kt/y", Some("other")).is_err(), "two namespaces");
        assert!(id("x", None).is_err());
        assert!(id("pod/x", None).is_err());
        assert!(id("a/b/c/d", None).is_err());
        assert_eq!(kind("Futures").unwrap(), ObjectKind::Future);
    }
}
