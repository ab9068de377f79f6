//! The handler protocol, version 1 (docs/handlers.md): one JSON object per
//! line. This file writes the worker's messages and reads the handler's,
//! refusing anything else with a message that quotes what was written.

use crate::args::Args;
use kontinuum_api::messages::is_function_name;
use kontinuum_api::{FnRef, TaskSpec};
use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Map, Value};
use std::time::SystemTime;

/// The protocol version this worker speaks.
pub const PROTOCOL: u64 = 1;
/// Longest line either side may write, newline included: the worker API's
/// body limit, which a result has to pass anyway.
pub const MAX_LINE: usize = kontinuum_api::endpoints::MAX_BODY_BYTES;
/// Most functions one hello may list.
pub const MAX_FUNCTIONS: usize = 10_000;
/// How much of an offending line a message quotes.
const QUOTE: usize = 200;

/// A message from a handler process.
#[derive(Debug, PartialEq)]
pub(crate) enum FromHandler {
    Hello {
        functions: Vec<String>,
    },
    Result {
        id: u64,
        value: Value,
    },
    Error {
        id: u64,
        message: String,
        retryable: bool,
    },
    Child {
        id: u64,
        req: u64,
        call: FnRef,
        weight: u64,
    },
    Spawn {
        id: u64,
        req: u64,
        spec: Box<TaskSpec>,
    },
    Progress {
        id: u64,
        units: u64,
    },
}

/// `"…"`: the start of what a handler wrote, for error messages.
pub(crate) fn quote(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(QUOTE)]);
    let more = if bytes.len() > QUOTE { "..." } else { "" };
    format!("{:?}{more}", text.trim_end_matches(['\n', '\r']))
}

/// A result, the message of almost every line, read straight into place.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultLine<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    id: u64,
    value: Value,
}

/// Reads one line (without its newline) the handler wrote.
pub(crate) fn parse(line: &[u8]) -> Result<FromHandler, String> {
    if let Ok(r) = serde_json::from_slice::<ResultLine>(line)
        && r.kind == "result"
    {
        return Ok(FromHandler::Result {
            id: r.id,
            value: r.value,
        });
    }
    let not_protocol = |why: String| format!("{why}: {}", quote(line));
    let value: Value = serde_json::from_slice(line)
        .map_err(|e| not_protocol(format!("a line that is not JSON ({e})")))?;
    let Value::Object(map) = value else {
        return Err(not_protocol("a line that is not a JSON object".into()));
    };
    let mut fields = Fields { map };
    let kind = fields.string("type").map_err(&not_protocol)?;
    let message = read_message(&kind, &mut fields)
        .and_then(|m| fields.done().map(|()| m))
        .map_err(|why| {
            not_protocol(format!(
                "a '{kind}' message that is not the protocol ({why})"
            ))
        })?;
    Ok(message)
}

fn read_message(kind: &str, fields: &mut Fields) -> Result<FromHandler, String> {
    match kind {
        "hello" => hello(fields),
        "result" => Ok(FromHandler::Result {
            id: fields.u64("id")?,
            value: fields.take("value")?,
        }),
        "error" => Ok(FromHandler::Error {
            id: fields.u64("id")?,
            message: fields.string("message")?,
            retryable: fields.bool("retryable")?,
        }),
        "child" => Ok(FromHandler::Child {
            id: fields.u64("id")?,
            req: fields.u64("req")?,
            call: fields.fnref("call")?,
            weight: fields.optional_u64("weight")?.unwrap_or(1),
        }),
        "spawn" => Ok(FromHandler::Spawn {
            id: fields.u64("id")?,
            req: fields.u64("req")?,
            spec: Box::new(fields.spec("spec")?),
        }),
        "progress" => Ok(FromHandler::Progress {
            id: fields.u64("id")?,
            units: fields.u64("units")?,
        }),
        other => Err(format!(
            "unknown message type '{other}' (hello, result, error, child, spawn, progress)"
        )),
    }
}

fn hello(fields: &mut Fields) -> Result<FromHandler, String> {
    let protocol = fields.u64("protocol")?;
    if protocol != PROTOCOL {
        return Err(format!(
            "protocol {protocol}, but this worker speaks protocol {PROTOCOL}"
        ));
    }
    let Value::Array(list) = fields.take("functions")? else {
        return Err("functions: expected a list of function names".into());
    };
    if list.is_empty() {
        return Err("functions: the list is empty; a handler must serve at least one".into());
    }
    if list.len() > MAX_FUNCTIONS {
        return Err(format!(
            "functions: {} names, at most {MAX_FUNCTIONS}",
            list.len()
        ));
    }
    let mut functions = Vec::with_capacity(list.len());
    for (i, name) in list.into_iter().enumerate() {
        match name {
            Value::String(s) if is_function_name(&s) => functions.push(s),
            other => {
                return Err(format!(
                    "functions[{i}]: {other} is not a function name (letters, digits, '_', '.', '-'; not starting with a digit)"
                ));
            }
        }
    }
    functions.sort();
    functions.dedup();
    Ok(FromHandler::Hello { functions })
}

/// The fields of one message, taken one by one; what is left is an error.
struct Fields {
    map: Map<String, Value>,
}

impl Fields {
    fn take(&mut self, name: &str) -> Result<Value, String> {
        self.map
            .remove(name)
            .ok_or_else(|| format!("missing field '{name}'"))
    }

    fn string(&mut self, name: &str) -> Result<String, String> {
        match self.take(name)? {
            Value::String(s) => Ok(s),
            other => Err(format!("{name}: expected a string, got {other}")),
        }
    }

    fn bool(&mut self, name: &str) -> Result<bool, String> {
        match self.take(name)? {
            Value::Bool(b) => Ok(b),
            other => Err(format!("{name}: expected true or false, got {other}")),
        }
    }

    fn u64(&mut self, name: &str) -> Result<u64, String> {
        let value = self.take(name)?;
        value
            .as_u64()
            .ok_or_else(|| format!("{name}: expected an unsigned integer, got {value}"))
    }

    fn optional_u64(&mut self, name: &str) -> Result<Option<u64>, String> {
        if self.map.contains_key(name) {
            self.u64(name).map(Some)
        } else {
            Ok(None)
        }
    }

    fn fnref(&mut self, name: &str) -> Result<FnRef, String> {
        let call: FnRef =
            serde_json::from_value(self.take(name)?).map_err(|e| format!("{name}: {e}"))?;
        kontinuum_api::validate::rules::check_fnref(&call, name).map_err(|e| e.to_string())?;
        Ok(call)
    }

    fn spec(&mut self, name: &str) -> Result<TaskSpec, String> {
        serde_json::from_value(self.take(name)?).map_err(|e| format!("{name}: {e}"))
    }

    fn done(self) -> Result<(), String> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(extra) => Err(format!("unknown field '{extra}'")),
        }
    }
}

/// A call, as one line (newline included).
pub(crate) fn call_line(
    id: u64,
    function: &str,
    args: &Args<'_>,
    attempt: u32,
    deadline: Option<SystemTime>,
) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    struct Call<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: u64,
        function: &'a str,
        args: ArgsJson<'a, 'a>,
        attempt: u32,
        deadline: Option<u64>,
    }
    let deadline = deadline.map(|d| {
        d.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        })
    });
    line(&Call {
        kind: "call",
        id,
        function,
        args: ArgsJson(args),
        attempt,
        deadline,
    })
}

/// The answer to a handler's request: a value, or an error.
pub(crate) fn answer_line(id: u64, req: u64, answer: Result<Value, crate::FnError>) -> Vec<u8> {
    let mut message = serde_json::json!({"type": "answer", "id": id, "req": req});
    match answer {
        Ok(value) => message["value"] = value,
        Err(e) => {
            message["error"] = serde_json::json!({"message": e.message, "retryable": !e.permanent});
        }
    }
    // A Value always serializes.
    line(&message).unwrap_or_default()
}

pub(crate) fn cancel_line(id: u64) -> Vec<u8> {
    line(&serde_json::json!({"type": "cancel", "id": id})).unwrap_or_default()
}

fn line<T: Serialize>(message: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = serde_json::to_vec(message)?;
    out.push(b'\n');
    Ok(out)
}

/// A call's arguments as one JSON object, written from the view (bound and
/// call-time arguments) without building a merged map.
struct ArgsJson<'s, 'a>(&'s Args<'a>);

impl Serialize for ArgsJson<'_, '_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (name, value) in self.0.iter() {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::borrow::Cow;
    use std::time::Duration;

    fn parse_str(s: &str) -> Result<FromHandler, String> {
        parse(s.as_bytes())
    }

    #[test]
    fn every_message_of_a_handler_reads() {
        assert_eq!(
            parse_str(r#"{"type":"hello","protocol":1,"functions":["py.b","py.a","py.a"]}"#),
            Ok(FromHandler::Hello {
                functions: vec!["py.a".into(), "py.b".into()]
            })
        );
        assert_eq!(
            parse_str(r#"{"type":"result","id":7,"value":{"$fn":{"function":"py.a","args":{}}}}"#),
            Ok(FromHandler::Result {
                id: 7,
                value: json!({"$fn": {"function": "py.a", "args": {}}})
            })
        );
        assert_eq!(
            parse_str(r#"{"type":"result","id":7,"value":null}"#),
            Ok(FromHandler::Result {
                id: 7,
                value: Value::Null
            })
        );
        assert_eq!(
            parse_str(r#"{"type":"error","id":8,"message":"ValueError: no","retryable":false}"#),
            Ok(FromHandler::Error {
                id: 8,
                message: "ValueError: no".into(),
                retryable: false
            })
        );
        assert_eq!(
            parse_str(
                r#"{"type":"child","id":1,"req":2,"call":{"function":"py.a","args":{"x":1}}}"#
            ),
            Ok(FromHandler::Child {
                id: 1,
                req: 2,
                call: FnRef::new("py.a").arg("x", 1),
                weight: 1
            })
        );
        assert!(matches!(
            parse_str(r#"{"type":"spawn","id":1,"req":3,"spec":{"call":{"function":"py.a"}}}"#),
            Ok(FromHandler::Spawn { id: 1, req: 3, .. })
        ));
        assert_eq!(
            parse_str(r#"{"type":"progress","id":1,"units":50}"#),
            Ok(FromHandler::Progress { id: 1, units: 50 })
        );
    }

    #[test]
    fn what_is_not_the_protocol_is_refused_quoting_it() {
        let cases = [
            ("hello world", "a line that is not JSON"),
            ("[1,2]", "a line that is not a JSON object"),
            (r#"{"id":1}"#, "missing field 'type'"),
            (
                r#"{"type":"rezult","id":1}"#,
                "unknown message type 'rezult'",
            ),
            (r#"{"type":"result","id":1}"#, "missing field 'value'"),
            (
                r#"{"type":"result","id":-1,"value":1}"#,
                "id: expected an unsigned integer",
            ),
            (
                r#"{"type":"result","id":1,"value":1,"extra":2}"#,
                "unknown field 'extra'",
            ),
            (
                r#"{"type":"error","id":1,"message":"x"}"#,
                "missing field 'retryable'",
            ),
            (
                r#"{"type":"hello","protocol":2,"functions":["a"]}"#,
                "protocol 2, but this worker speaks protocol 1",
            ),
            (
                r#"{"type":"hello","protocol":1,"functions":[]}"#,
                "the list is empty",
            ),
            (
                r#"{"type":"hello","protocol":1,"functions":["9x"]}"#,
                "functions[0]: \"9x\" is not a function name",
            ),
            (
                r#"{"type":"child","id":1,"req":1,"call":{"function":"no good"}}"#,
                "call.function",
            ),
            (
                r#"{"type":"spawn","id":1,"req":1,"spec":{"cal":{}}}"#,
                "spec:",
            ),
        ];
        for (line, want) in cases {
            let err = parse_str(line).unwrap_err();
            assert!(err.contains(want), "{line}: {err}");
            assert!(
                err.contains(&line[..line.len().min(20)].replace('"', "\\\""))
                    || !line.starts_with('{'),
                "{line}: {err}"
            );
        }
        let long = "x".repeat(1000);
        let err = parse_str(&long).unwrap_err();
        assert!(err.ends_with("...") && err.len() < 400, "{err}");
    }

    #[test]
    fn a_call_line_carries_arguments_attempt_and_deadline() {
        let bound = json!({"a": 4}).as_object().cloned().unwrap();
        let args = Args::new(&bound)
            .with("item", Cow::Owned(json!(5)))
            .unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let line = call_line(9, "py.add", &args, 2, Some(at)).unwrap();
        assert_eq!(line.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(
            v,
            json!({"type": "call", "id": 9, "function": "py.add", "args": {"a": 4, "item": 5},
                   "attempt": 2, "deadline": 1_700_000_000_123u64})
        );
        let line = call_line(1, "f", &Args::new(&Map::new()), 1, None).unwrap();
        assert!(
            String::from_utf8(line)
                .unwrap()
                .contains("\"deadline\":null")
        );
        let answer: Value = serde_json::from_slice(&answer_line(3, 4, Ok(json!(12)))).unwrap();
        assert_eq!(
            answer,
            json!({"type": "answer", "id": 3, "req": 4, "value": 12})
        );
        let answer: Value =
            serde_json::from_slice(&answer_line(3, 4, Err(crate::FnError::permanent("no"))))
                .unwrap();
        assert_eq!(
            answer,
            json!({"type": "answer", "id": 3, "req": 4, "error": {"message": "no", "retryable": false}})
        );
    }
}
