//! FnRef: a function sent as data — a registered name plus its bound arguments.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The key under which an FnRef travels inside arguments and results.
pub const FN_VALUE_KEY: &str = "$fn";

/// A reference to a function served by a worker pool, with the arguments
/// already bound to it (the closure's captured environment).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FnRef {
    /// Name of a function that the pool's workers register, e.g. `std.sum` or `people.update`.
    #[schemars(pattern(crate::messages::FUNCTION_NAME_PATTERN))]
    pub function: String,
    /// Arguments bound to the function (its captured environment). Call-time arguments are merged in; binding a name twice is an error.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    #[schemars(schema_with = "crate::schema::free_form_object")]
    pub args: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BindError {
    #[error("argument '{0}' is already bound")]
    AlreadyBound(String),
}

impl FnRef {
    pub fn new(function: impl Into<String>) -> Self {
        FnRef {
            function: function.into(),
            args: Map::new(),
        }
    }

    /// Builder form of [`FnRef::bind_one`] for literals in code and tests.
    pub fn arg(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.args.insert(name.to_string(), value.into());
        self
    }

    /// A new FnRef with `extra` merged into the bound arguments.
    pub fn bind(&self, extra: &Map<String, Value>) -> Result<FnRef, BindError> {
        let mut bound = self.clone();
        for (name, value) in extra {
            bound.bind_one(name, value.clone())?;
        }
        Ok(bound)
    }

    /// Binds one more argument in place.
    pub fn bind_one(&mut self, name: &str, value: Value) -> Result<(), BindError> {
        if self.args.contains_key(name) {
            return Err(BindError::AlreadyBound(name.to_string()));
        }
        self.args.insert(name.to_string(), value);
        Ok(())
    }

    /// The canonical JSON (RFC 8785) of `{"function": .., "args": ..}`.
    pub fn canonical_json(&self) -> String {
        // Written directly, members in JCS order ("args" < "function"),
        // rather than by building and cloning an object first.
        let mut out = String::with_capacity(64);
        out.push_str("{\"args\":");
        crate::canonical::write_map(&mut out, &self.args);
        out.push_str(",\"function\":");
        crate::canonical::write_string(&mut out, &self.function);
        out.push('}');
        out
    }

    /// Intentional equality: `sha256:` + hex SHA-256 of the canonical JSON.
    pub fn stable_id(&self) -> String {
        let digest = Sha256::digest(self.canonical_json().as_bytes());
        let mut id = String::with_capacity(7 + 64);
        id.push_str("sha256:");
        crate::canonical::push_hex(&mut id, &digest);
        id
    }

    /// The `{"$fn": {...}}` value form, for FnRefs inside arguments and results.
    pub fn to_value(&self) -> Value {
        let mut inner = Map::new();
        inner.insert("function".into(), Value::String(self.function.clone()));
        inner.insert("args".into(), Value::Object(self.args.clone()));
        let mut outer = Map::new();
        outer.insert(FN_VALUE_KEY.into(), Value::Object(inner));
        Value::Object(outer)
    }

    /// Reads the `{"$fn": {...}}` form. `None` when `value` is not that form;
    /// `Some(Err)` when it is, but malformed.
    pub fn from_value(value: &Value) -> Option<Result<FnRef, FnValueError>> {
        let obj = value.as_object()?;
        if obj.len() != 1 {
            return None;
        }
        let inner = obj.get(FN_VALUE_KEY)?;
        Some(serde_json::from_value::<FnRef>(inner.clone()).map_err(FnValueError))
    }
}

/// A `{"$fn": ...}` value whose inside is not an FnRef.
#[derive(Debug, thiserror::Error)]
#[error("'{FN_VALUE_KEY}' value is not an FnRef ({{function, args}}): {0}")]
pub struct FnValueError(#[source] pub serde_json::Error);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(yaml: &str) -> FnRef {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn stable_id_vectors_from_design() {
        let cases = [
            (
                "{function: std.sum, args: {a: 4, b: 5}}",
                r#"{"args":{"a":4,"b":5},"function":"std.sum"}"#,
                "sha256:ef451d4338095897825baa8b97a3502fc8ba990830b0eef4a6b1b1ea8da47a5e",
            ),
            (
                r#"{function: std.echo, args: {z: [1, 2.0, "x"], a: {y: null, b: true}}}"#,
                r#"{"args":{"a":{"b":true,"y":null},"z":[1,2,"x"]},"function":"std.echo"}"#,
                "sha256:c3a8e2549cb5f64a9bc39621964a512c39a58a571c6a5d0c47baa83bab4c3954",
            ),
            (
                r#"{function: people.update, args: {personId: "1234"}}"#,
                r#"{"args":{"personId":"1234"},"function":"people.update"}"#,
                "sha256:fc3c27dd17c1fa1b923264c9ab47db1619c06330e55d668611648d48f8dd94c3",
            ),
            (
                "{function: std.echo}",
                r#"{"args":{},"function":"std.echo"}"#,
                "sha256:b6a4375872ba5a3aaf614c4aa266627c4f4c91d2dab26f67a4c5c4472434a6cf",
            ),
        ];
        for (yaml, canonical, id) in cases {
            let f = parse(yaml);
            assert_eq!(f.canonical_json(), canonical, "{yaml}");
            assert_eq!(f.stable_id(), id, "{yaml}");
        }
    }

    #[test]
    fn stable_id_ignores_key_order_and_json_source() {
        let a: FnRef =
            serde_json::from_str(r#"{"function":"f","args":{"x":1,"y":[2.0]}}"#).unwrap();
        let b: FnRef = serde_json::from_str(r#"{"args":{"y":[2],"x":1},"function":"f"}"#).unwrap();
        assert_eq!(a.stable_id(), b.stable_id());
        assert_ne!(a.stable_id(), FnRef::new("f").stable_id());
    }

    #[test]
    fn binding_twice_is_an_error() {
        let f = FnRef::new("std.sum").arg("a", 4);
        let mut extra = Map::new();
        extra.insert("b".into(), json!(5));
        let g = f.bind(&extra).unwrap();
        assert_eq!(g.args, *json!({"a": 4, "b": 5}).as_object().unwrap());
        let mut dup = Map::new();
        dup.insert("a".into(), json!(1));
        let err = g.bind(&dup).unwrap_err();
        assert_eq!(err.to_string(), "argument 'a' is already bound");
    }

    #[test]
    fn value_form_round_trips() {
        let f = FnRef::new("std.sum").arg("a", 4);
        let v = f.to_value();
        assert_eq!(v, json!({"$fn": {"function": "std.sum", "args": {"a": 4}}}));
        assert_eq!(FnRef::from_value(&v).unwrap().unwrap(), f);
        assert!(FnRef::from_value(&json!({"function": "x"})).is_none());
        assert!(FnRef::from_value(&json!({"$fn": 3})).unwrap().is_err());
    }
}
