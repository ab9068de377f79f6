//! How a future combines its children's values: a built-in reducer name or
//! an FnRef called with `{acc, value}`.

use crate::fnref::FnRef;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BuiltinReducer {
    Sum,
    Count,
    Min,
    Max,
    Mean,
    Collect,
    Merge,
}

impl BuiltinReducer {
    pub const ALL: [BuiltinReducer; 7] = [
        BuiltinReducer::Sum,
        BuiltinReducer::Count,
        BuiltinReducer::Min,
        BuiltinReducer::Max,
        BuiltinReducer::Mean,
        BuiltinReducer::Collect,
        BuiltinReducer::Merge,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BuiltinReducer::Sum => "sum",
            BuiltinReducer::Count => "count",
            BuiltinReducer::Min => "min",
            BuiltinReducer::Max => "max",
            BuiltinReducer::Mean => "mean",
            BuiltinReducer::Collect => "collect",
            BuiltinReducer::Merge => "merge",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Reducer {
    Builtin(BuiltinReducer),
    Function(FnRef),
}

impl Default for Reducer {
    fn default() -> Self {
        Reducer::Builtin(BuiltinReducer::Collect)
    }
}

pub const REDUCER_HINT: &str =
    "one of sum, count, min, max, mean, collect, merge, or an FnRef {function: ...}";

/// Why a value is not a reducer; each message ends with the choices.
#[derive(Debug, thiserror::Error)]
pub enum ReducerError {
    #[error("unknown reducer '{0}': use {REDUCER_HINT}")]
    UnknownName(String),
    #[error("reducer is not an FnRef ({0}): use {REDUCER_HINT}")]
    NotAnFnRef(#[source] serde_json::Error),
    #[error("reducer must be a string or an object, not {0}: use {REDUCER_HINT}")]
    WrongType(Value),
}

impl Reducer {
    pub fn from_value(value: &Value) -> Result<Reducer, ReducerError> {
        match value {
            Value::String(name) => BuiltinReducer::from_name(name)
                .map(Reducer::Builtin)
                .ok_or_else(|| ReducerError::UnknownName(name.clone())),
            Value::Object(_) => serde_json::from_value::<FnRef>(value.clone())
                .map(Reducer::Function)
                .map_err(ReducerError::NotAnFnRef),
            other => Err(ReducerError::WrongType(other.clone())),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Reducer::Builtin(b) => Value::String(b.name().to_string()),
            Reducer::Function(f) => serde_json::to_value(f).unwrap_or(Value::Null),
        }
    }
}

impl Serialize for Reducer {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Reducer::Builtin(b) => serializer.serialize_str(b.name()),
            Reducer::Function(f) => f.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for Reducer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Reducer::from_value(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_names_and_fnrefs() {
        assert_eq!(
            Reducer::from_value(&json!("sum")).unwrap(),
            Reducer::Builtin(BuiltinReducer::Sum)
        );
        assert_eq!(
            Reducer::from_value(&json!({"function": "my.add"})).unwrap(),
            Reducer::Function(FnRef::new("my.add"))
        );
        let err = Reducer::from_value(&json!("avg")).unwrap_err();
        assert!(err.to_string().contains("unknown reducer 'avg'"), "{err}");
        assert!(Reducer::from_value(&json!(3)).is_err());
    }
}
