//! `kontinuum submit`: validate like `kontinuum run`, send to a server,
//! print the accepted names; with `--wait`, follow the objects until they
//! and their continuations are final and print (whole results) and exit
//! like `run` (0/1).

use crate::load::{self, Object};
use crate::output::{self, Format};
use crate::progress::Progress;
use crate::remote::{RemoteError, ServerArgs, block_on, print_out, whole_result};
use crate::run::{exit_code, full_object, is_final};
use kontinuum_api::ObjectId;
use kontinuum_api::endpoints::{ErrorBody, codes};
use kontinuum_engine::SubmissionBody;
use kontinuum_server::{Client, ClientError};
use serde_json::Value;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// How often `--wait` reads the objects' statuses.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    /// Manifest files (multi-document YAML).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Block until every object is final, then print them and exit like `run`.
    #[arg(long)]
    pub wait: bool,
    /// Output format (json and yaml as kubectl prints them).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

pub fn submit(args: SubmitArgs) -> Result<ExitCode, RemoteError> {
    // Nothing is sent unless every document is valid.
    let objects =
        load::load(&args.files, load::Workers::Elsewhere).map_err(RemoteError::Invalid)?;
    let documents: Vec<Value> = objects.iter().map(document).collect();
    let client = args.server.client()?;
    block_on(async {
        client
            .submit(documents)
            .await
            .map_err(|e| rejected(e, &objects))?;
        if !args.wait {
            let text = match args.output {
                Format::Text => objects
                    .iter()
                    .map(|o| format!("{} accepted\n", o.key))
                    .collect(),
                other => {
                    let full: Vec<Value> = objects.iter().map(|o| full_object(o, None)).collect();
                    output::render(&full, other)
                }
            };
            print_out(&text);
            return Ok(ExitCode::SUCCESS);
        }
        let statuses = wait(&client, &objects).await?;
        let full: Vec<Value> = objects
            .iter()
            .zip(&statuses)
            .map(|(o, s)| full_object(o, s.as_ref()))
            .collect();
        print_out(&output::render(&full, args.output));
        Ok(ExitCode::from(exit_code(&statuses)))
    })?
}

/// The document as written, with its `lines` path made absolute (the
/// server reads the file itself, so a relative path means nothing there).
fn document(object: &Object) -> Value {
    let mut doc = object.document.clone();
    if let Some(SubmissionBody::Future(spec)) = object.submission.as_ref().map(|s| &s.body)
        && let Some(lines) = spec.map.as_ref().and_then(|m| m.source.lines.as_ref())
        && let Some(slot) = doc.pointer_mut("/spec/map/source/lines/path")
    {
        *slot = Value::from(lines.path.clone());
    }
    doc
}

/// A 400 `invalid` names objects by index: print them by name instead.
fn rejected(e: ClientError, objects: &[Object]) -> RemoteError {
    match e {
        ClientError::Api {
            status: 400,
            body: ErrorBody {
                error, problems, ..
            },
        } if error == codes::INVALID && !problems.is_empty() => {
            let lines = problems
                .iter()
                .map(|p| {
                    let name = objects.get(p.object).map_or("?", |o| o.key.as_str());
                    format!("{name}: {}: {}", p.field, p.message)
                })
                .collect();
            RemoteError::Rejected(lines)
        }
        other => RemoteError::Client(other),
    }
}

/// Polls until every Task and future is final, then until the
/// continuations their outcomes started are; `None` for a WorkerPool.
async fn wait(client: &Client, objects: &[Object]) -> Result<Vec<Option<Value>>, RemoteError> {
    let keys: Vec<String> = objects.iter().map(|o| o.key.clone()).collect();
    let mut progress = Progress::new(&keys);
    let mut statuses: Vec<Option<Value>> = vec![None; objects.len()];
    let mut ticker = tokio::time::interval(POLL);
    loop {
        ticker.tick().await;
        for (slot, object) in statuses.iter_mut().zip(objects) {
            let Some(id) = object.id() else { continue };
            if slot.as_ref().is_some_and(is_final) {
                continue;
            }
            let view = client.get(id).await?;
            *slot = Some(view.status);
        }
        progress.update(&statuses);
        let done = statuses
            .iter()
            .zip(objects)
            .all(|(s, o)| o.submission.is_none() || s.as_ref().is_some_and(is_final));
        if done {
            progress.finish();
            break;
        }
    }
    // Like `run`: the continuations the outcomes started have run too.
    let continuations: Vec<ObjectId> = statuses
        .iter()
        .zip(objects)
        .filter_map(|(s, o)| {
            let name = s.as_ref()?["continuation"].as_str()?;
            Some(ObjectId::task(o.id()?.namespace.clone(), name))
        })
        .collect();
    for id in &continuations {
        while !is_final(&client.get(id).await?.status) {
            ticker.tick().await;
        }
    }
    // And, like `run`, whole results: the status inlines at most 4 KiB.
    for (slot, object) in statuses.iter_mut().zip(objects) {
        if let (Some(status), Some(id)) = (slot.as_mut(), object.id()) {
            whole_result(client, id, status).await?;
        }
    }
    Ok(statuses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_path_is_sent_absolute() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.txt"), "a b\n").unwrap();
        let file = dir.path().join("job.yaml");
        std::fs::write(
            &file,
            "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\n\
             metadata: {name: w}\nspec:\n  map:\n    source: {lines: {path: t.txt}}\n\
             \x20   function: {function: std.wordcount}\n    reduce: merge\n",
        )
        .unwrap();
        let objects = load::load(std::slice::from_ref(&file), load::Workers::Elsewhere).unwrap();
        let doc = document(&objects[0]);
        let expected = dir.path().join("t.txt").display().to_string();
        assert_eq!(doc["spec"]["map"]["source"]["lines"]["path"], expected);
        assert!(doc["spec"].get("pool").is_none(), "defaults are not added");
    }
}
