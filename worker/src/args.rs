//! The arguments of one call, seen without merging: the FnRef's bound map
//! plus up to two call-time extras (a map adds `item`, a reducer `acc` and
//! `value`). Building a merged map per item would cost an allocation and a
//! deep clone each time, which the map hot path cannot afford.

use crate::error::FnError;
use kontinuum_api::BindError;
use kontinuum_api::FnRef;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// Call-time arguments have names the system chooses (`item`, `acc`,
/// `value`, ...), so they are `&'static str`: no allocation, small to move.
type Extra<'a> = Option<(&'static str, Cow<'a, Value>)>;

#[derive(Clone, Debug)]
enum Bound<'a> {
    Borrowed(&'a Map<String, Value>),
    /// Owned, and shared so that async calls over many items need not clone it.
    Shared(Arc<Map<String, Value>>),
}

impl Bound<'_> {
    fn map(&self) -> &Map<String, Value> {
        match self {
            Bound::Borrowed(m) => m,
            Bound::Shared(m) => m,
        }
    }
}

/// A view of the merged arguments of a call.
#[derive(Clone, Debug)]
pub struct Args<'a> {
    bound: Bound<'a>,
    extra: [Extra<'a>; 2],
}

impl<'a> Args<'a> {
    /// Arguments borrowed from a map (e.g. an FnRef's bound args).
    pub fn new(bound: &'a Map<String, Value>) -> Self {
        Args {
            bound: Bound::Borrowed(bound),
            extra: [None, None],
        }
    }

    /// Adds a call-time argument. Binding a name twice is an error, as for FnRef.
    pub fn with(self, name: &'static str, value: Cow<'a, Value>) -> Result<Self, BindError> {
        if self.get(name).is_some() {
            return Err(BindError::AlreadyBound(name.to_string()));
        }
        Ok(self.with_unchecked(name, value))
    }

    /// `bound` plus one call-time argument the caller has checked is free,
    /// built in place: the map hot path makes one per item.
    #[inline]
    pub(crate) fn with_one(
        bound: &'a Map<String, Value>,
        name: &'static str,
        value: Cow<'a, Value>,
    ) -> Self {
        Args {
            bound: Bound::Borrowed(bound),
            extra: [Some((name, value)), None],
        }
    }

    /// [`Args::with`] for a name the caller has already checked is free
    /// (once per slice instead of once per item).
    pub(crate) fn with_unchecked(mut self, name: &'static str, value: Cow<'a, Value>) -> Self {
        for slot in &mut self.extra {
            if slot.is_none() {
                *slot = Some((name, value));
                return self;
            }
        }
        // Rare: more than two extras. Fold everything into one owned map.
        let mut map = self.to_map();
        map.insert(name.to_string(), value.into_owned());
        Args {
            bound: Bound::Shared(Arc::new(map)),
            extra: [None, None],
        }
    }

    /// One argument, bound or call-time.
    pub fn get(&self, name: &str) -> Option<&Value> {
        for (n, v) in self.extra.iter().flatten() {
            if *n == name {
                return Some(v);
            }
        }
        self.bound.map().get(name)
    }

    /// A required argument: missing is a permanent error naming it.
    pub fn require(&self, name: &str) -> Result<&Value, FnError> {
        self.get(name).ok_or_else(|| FnError::missing_arg(name))
    }

    /// An argument in the `{"$fn": ...}` form, as an FnRef.
    pub fn fnref(&self, name: &str) -> Result<FnRef, FnError> {
        match FnRef::from_value(self.require(name)?) {
            Some(Ok(f)) => Ok(f),
            Some(Err(e)) => Err(FnError::bad_arg(name, e)),
            None => Err(FnError::bad_arg(
                name,
                "expected a function value {\"$fn\": {function, args}}",
            )),
        }
    }

    /// All arguments: bound ones in their order, then call-time ones.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        let bound = self.bound.map().iter().map(|(k, v)| (k.as_str(), v));
        let extra = self.extra.iter().flatten().map(|(k, v)| (*k, v.as_ref()));
        bound.chain(extra)
    }

    pub fn len(&self) -> usize {
        self.bound.map().len() + self.extra.iter().flatten().count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The merged map (slow path: clones every value).
    pub fn to_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// The merged map, reusing the bound map when nothing else holds it.
    pub fn into_map(self) -> Map<String, Value> {
        let mut map = match self.bound {
            Bound::Borrowed(m) => m.clone(),
            Bound::Shared(m) => Arc::try_unwrap(m).unwrap_or_else(|m| (*m).clone()),
        };
        for (k, v) in self.extra.into_iter().flatten() {
            map.insert(k.to_string(), v.into_owned());
        }
        map
    }

    /// The merged arguments as one JSON object.
    pub fn to_value(&self) -> Value {
        Value::Object(self.to_map())
    }

    /// Detaches the view from what it borrows, for async functions whose
    /// futures outlive the caller's borrow.
    pub fn into_owned(self) -> Args<'static> {
        let bound = match self.bound {
            Bound::Borrowed(m) => Bound::Shared(Arc::new(m.clone())),
            Bound::Shared(m) => Bound::Shared(m),
        };
        let [a, b] = self.extra;
        let own = |e: Extra<'a>| e.map(|(k, v)| (k, Cow::Owned(v.into_owned())));
        Args {
            bound,
            extra: [own(a), own(b)],
        }
    }

    /// Deserializes the merged arguments into `T`. A wrong type or a missing
    /// field is a permanent error naming the argument (`argument 'a.b': ...`).
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, FnError> {
        serde_path_to_error::deserialize(self.to_value()).map_err(|e| {
            let path = e.path().to_string();
            if path == "." || path.is_empty() {
                FnError::permanent(format!("invalid arguments: {}", e.inner()))
            } else {
                FnError::bad_arg(&path, e.inner())
            }
        })
    }
}

impl Args<'static> {
    /// Arguments that own their map.
    pub fn owned(bound: Map<String, Value>) -> Self {
        Args {
            bound: Bound::Shared(Arc::new(bound)),
            extra: [None, None],
        }
    }

    /// Arguments over a shared map: cloning the view does not clone the map.
    pub fn shared(bound: Arc<Map<String, Value>>) -> Self {
        Args {
            bound: Bound::Shared(bound),
            extra: [None, None],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn get_sees_bound_and_extra_without_merging() {
        let bound = map(json!({"a": 1, "b": "x"}));
        let item = json!(7);
        let args = Args::new(&bound)
            .with("item", Cow::Borrowed(&item))
            .unwrap();
        assert_eq!(args.get("a"), Some(&json!(1)));
        assert_eq!(args.get("item"), Some(&json!(7)));
        assert_eq!(args.get("zz"), None);
        assert_eq!(args.len(), 3);
        assert_eq!(args.to_value(), json!({"a": 1, "b": "x", "item": 7}));
    }

    #[test]
    fn binding_twice_is_refused() {
        let bound = map(json!({"item": 1}));
        let err = Args::new(&bound)
            .with("item", Cow::Owned(json!(2)))
            .unwrap_err();
        assert_eq!(err.to_string(), "argument 'item' is already bound");
    }

    #[test]
    fn more_than_two_extras_fall_back_to_a_map() {
        let bound = map(json!({"a": 1}));
        let args = Args::new(&bound)
            .with("b", Cow::Owned(json!(2)))
            .and_then(|a| a.with("c", Cow::Owned(json!(3))))
            .and_then(|a| a.with("d", Cow::Owned(json!(4))))
            .unwrap();
        assert_eq!(args.to_value(), json!({"a": 1, "b": 2, "c": 3, "d": 4}));
        assert!(args.clone().with("a", Cow::Owned(json!(0))).is_err());
        let owned = args.into_owned();
        assert_eq!(
            owned.into_map(),
            map(json!({"a": 1, "b": 2, "c": 3, "d": 4}))
        );
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Typed {
        a: i64,
        inner: Inner,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        n: u32,
    }

    #[test]
    fn parse_names_the_bad_field() {
        let bound = map(json!({"a": "four", "inner": {"n": 1}}));
        let err = Args::new(&bound).parse::<Typed>().unwrap_err();
        assert!(err.permanent);
        assert!(
            err.message.starts_with("argument 'a': invalid type"),
            "{}",
            err.message
        );
        let bound = map(json!({"a": 4, "inner": {"n": -1}}));
        let err = Args::new(&bound).parse::<Typed>().unwrap_err();
        assert!(
            err.message.starts_with("argument 'inner.n'"),
            "{}",
            err.message
        );
        let bound = map(json!({"inner": {"n": 1}}));
        let err = Args::new(&bound).parse::<Typed>().unwrap_err();
        assert!(err.message.contains("missing field `a`"), "{}", err.message);
        let bound = map(json!({"a": 4, "inner": {"n": 1}}));
        assert_eq!(Args::new(&bound).parse::<Typed>().unwrap().a, 4);
    }

    #[test]
    fn fnref_arguments_use_the_dollar_fn_form() {
        let f = FnRef::new("std.sum").arg("a", 1);
        let bound = map(json!({"f": f.to_value(), "g": 3}));
        let args = Args::new(&bound);
        assert_eq!(args.fnref("f").unwrap(), f);
        assert!(
            args.fnref("g")
                .unwrap_err()
                .message
                .contains("argument 'g'")
        );
        assert!(
            args.fnref("h")
                .unwrap_err()
                .message
                .contains("missing argument 'h'")
        );
    }
}
