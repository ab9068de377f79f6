//! The `std.*` functions every stock worker serves (docs/reference.md lists
//! them with their arguments).

mod basic;
mod exec;

pub(crate) use exec::describe_exit;
mod wordcount;

use crate::error::FnError;
use crate::registry::Registry;
use kontinuum_api::accumulator::type_phrase;
use serde_json::Value;
use std::sync::Arc;

/// A registry holding every `std.*` function.
pub fn std_registry() -> Registry {
    let mut registry = Registry::new();
    register_std(&mut registry);
    registry
}

/// Adds the `std.*` functions to `registry`.
pub fn register_std(registry: &mut Registry) {
    registry
        .register_sync("std.echo", basic::echo)
        .register_sync("std.sum", basic::sum)
        .register_function("std.square", Arc::new(basic::Square))
        .register("std.sleep", basic::sleep)
        .register_sync("std.fail", basic::fail)
        .register_sync("std.log", basic::log)
        .register_sync("std.wordcount", wordcount::wordcount)
        .register("std.exec", exec::exec);
}

/// "argument 'x': expected Y, got a string".
fn wrong_type(name: &str, expected: &str, got: &Value) -> FnError {
    FnError::bad_arg(
        name,
        format!("expected {expected}, got {}", type_phrase(got)),
    )
}

fn as_str<'v>(name: &str, value: &'v Value) -> Result<&'v str, FnError> {
    value
        .as_str()
        .ok_or_else(|| wrong_type(name, "a string", value))
}
