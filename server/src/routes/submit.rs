//! `POST /v1/objects`: manifests validated with the same layer as `kontinuum
//! run`, whatever the client did before, while the body is parsed: each
//! object is a JSON value only until it is checked. A 7.4 MiB body of
//! 50,000 tasks held as values took 150 MB before anything was checked.

use crate::auth::{Caller, outside};
use crate::body::{RawBody, parse};
use crate::error::ApiError;
use crate::state::{AppStateRef, blocking_api};
use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use kontinuum_api::DEFAULT_NAMESPACE;
use kontinuum_api::endpoints::{Problem, SubmitResponse};
use kontinuum_api::validate::{Manifest, validate};
use kontinuum_engine::Submission;
use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::fmt;

pub(crate) async fn submit(
    State(state): State<AppStateRef>,
    Extension(caller): Extension<Caller>,
    RawBody(body): RawBody,
) -> Result<(StatusCode, crate::body::Json<SubmitResponse>), ApiError> {
    // Parsing and validating megabytes is CPU work: off the async threads.
    let names = blocking_api(&state.engine, move |engine| {
        let Planned {
            names,
            submissions,
            problems,
            objects,
        } = parse::<Planned>(&body)?;
        drop(body);
        if objects == 0 {
            return Err(ApiError::bad_field("objects", "no objects to submit"));
        }
        if !problems.is_empty() {
            return Err(ApiError::invalid(problems));
        }
        // A confined caller submits into its own namespace only.
        if submissions.iter().any(|s| !caller.may(&s.id.namespace)) {
            return Err(ApiError::forbidden(outside(&caller, "an object submitted")));
        }
        let count = submissions.len();
        engine.submit(submissions)?;
        tracing::info!(objects = count, "accepted a submission");
        Ok(names)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        crate::body::Json(SubmitResponse { names }),
    ))
}

/// `{"objects": [...]}` (the shape of `SubmitRequest`), checked object by
/// object: every problem, and the engine's submissions.
#[derive(Default)]
struct Planned {
    names: Vec<String>,
    submissions: Vec<Submission>,
    problems: Vec<Problem>,
    objects: usize,
}

impl Planned {
    fn add(&mut self, doc: &Value) {
        let index = self.objects;
        self.objects += 1;
        let manifest = match validate(doc) {
            Ok(m) => m,
            Err(errors) => {
                self.problems.extend(errors.into_iter().map(|e| Problem {
                    object: index,
                    field: e.field,
                    message: e.message,
                }));
                return;
            }
        };
        let name = manifest.name().to_string();
        let namespace = manifest_namespace(&manifest).to_string();
        match manifest {
            Manifest::Task(task) => {
                let submission = Submission::task(&namespace, &name, task.spec);
                self.names.push(submission.id.to_string());
                self.submissions.push(submission);
            }
            Manifest::Future(future) => {
                if let Some(message) = lines_problem(&future.spec) {
                    self.problems.push(Problem {
                        object: index,
                        field: "spec.map.source.lines.path".into(),
                        message,
                    });
                    return;
                }
                let submission = Submission::future(&namespace, &name, future.spec);
                self.names.push(submission.id.to_string());
                self.submissions.push(submission);
            }
            // Pools are the operator's business; this server runs what any
            // connected worker leases.
            Manifest::WorkerPool(_) => self.names.push(format!("{namespace}/workerpool/{name}")),
        }
    }
}

impl<'de> Deserialize<'de> for Planned {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_map(Body)
    }
}

struct Body;

impl<'de> Visitor<'de> for Body {
    type Value = Planned;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with the field 'objects'")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Planned, A::Error> {
        let mut planned = None;
        while let Some(key) = map.next_key::<String>()? {
            if key != "objects" {
                return Err(A::Error::unknown_field(&key, &["objects"]));
            }
            if planned.is_some() {
                return Err(A::Error::duplicate_field("objects"));
            }
            planned = Some(map.next_value::<Objects>()?.0);
        }
        planned.ok_or_else(|| A::Error::missing_field("objects"))
    }
}

struct Objects(Planned);

impl<'de> Deserialize<'de> for Objects {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_seq(Each)
    }
}

struct Each;

impl<'de> Visitor<'de> for Each {
    type Value = Objects;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of manifests")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Objects, A::Error> {
        let mut planned = Planned::default();
        while let Some(doc) = seq.next_element::<Value>()? {
            planned.add(&doc);
        }
        Ok(Objects(planned))
    }
}

/// metadata.namespace, or "default" as kubectl would use.
fn manifest_namespace(manifest: &Manifest) -> &str {
    let meta = match manifest {
        Manifest::Task(t) => &t.metadata,
        Manifest::Future(f) => &f.metadata,
        Manifest::WorkerPool(p) => &p.metadata,
    };
    meta.namespace.as_deref().unwrap_or(DEFAULT_NAMESPACE)
}

/// The server reads `lines` files itself, so their paths are the server's.
fn lines_problem(spec: &kontinuum_api::HierarchicalFutureSpec) -> Option<String> {
    let lines = spec.map.as_ref()?.source.lines.as_ref()?;
    let path = std::path::Path::new(&lines.path);
    if !path.is_absolute() {
        return Some(format!(
            "must be an absolute path on the server (found \"{}\")",
            lines.path
        ));
    }
    if !path.is_file() {
        return Some(format!("no such file on the server: {}", lines.path));
    }
    None
}
