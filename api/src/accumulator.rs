//! The built-in reducers' arithmetic.
//!
//! Workers fold item results inside a map leaf with [`Accumulator::add`]; the
//! engine folds children's accumulators at a node, in creation order, with
//! [`Accumulator::merge`]. An accumulator travels and is stored as a JSON
//! value ([`Accumulator::to_value`] / [`Accumulator::from_value`]);
//! [`Accumulator::finish`] gives the value a user sees.
//!
//! Semantics:
//! - `sum`: integers are added exactly in 128 bits and written as a JSON
//!   integer however large; leaving the 128-bit range is an error, never a
//!   wrap and never a silent switch to floating point. A float among the
//!   values makes the sum a float (the integer part stays exact until
//!   [`Accumulator::finish`] adds the two parts). Sum of nothing: `0`.
//! - `count`: how many items were seen, whatever they are.
//! - `min` / `max`: over numbers, exact for integers (also when integers and
//!   floats are compared); the first of equal values is kept. Of nothing: `null`.
//! - `mean`: the exact sum divided by the count, as a float. Of nothing: `null`.
//! - `collect`: the values in order, capped at [`COLLECT_CAP`]: the plain list,
//!   or `{"items": [first 10000], "truncated": true, "count": N}` beyond the cap.
//!   Of nothing: `[]`.
//! - `merge`: deep merge: objects merge key by key, numbers are added (exactly,
//!   as `sum`), arrays are concatenated, otherwise the later value wins (a word
//!   count). Of nothing: `{}`.

use crate::reducer::BuiltinReducer;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Number, Value};
use std::cmp::Ordering;

/// Most values `collect` keeps; beyond it the result says `truncated`.
pub const COLLECT_CAP: usize = 10_000;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReduceError {
    #[error(
        "{reducer} overflowed: the exact integer sum leaves the 128-bit range (about ±1.7e38); integers are never wrapped or turned into floats"
    )]
    IntegerOverflow { reducer: &'static str },
    #[error("{reducer} overflowed: the floating-point sum is not a finite number")]
    FloatOverflow { reducer: &'static str },
    #[error("{reducer} needs numbers, got {found}")]
    NotANumber {
        reducer: &'static str,
        found: &'static str,
    },
    #[error("{reducer}: the integer {digits} is beyond the 128-bit range")]
    IntegerTooLarge {
        reducer: &'static str,
        digits: String,
    },
    #[error("cannot merge a {from} accumulator into a {into} accumulator")]
    Mismatch {
        into: &'static str,
        from: &'static str,
    },
    #[error("not a reducer accumulator: {0}")]
    Malformed(String),
}

/// What [`Accumulator::finish`] gives when no value was seen: `sum` and
/// `count` 0, `min`, `max` and `mean` null, `collect` `[]`, `merge` `{}`.
pub fn empty_value(reducer: BuiltinReducer) -> Value {
    match reducer {
        BuiltinReducer::Sum | BuiltinReducer::Count => Value::from(0),
        BuiltinReducer::Min | BuiltinReducer::Max | BuiltinReducer::Mean => Value::Null,
        BuiltinReducer::Collect => Value::Array(Vec::new()),
        BuiltinReducer::Merge => Value::Object(Map::new()),
    }
}

/// "a string", "an object", ...: how messages name a JSON value's type.
pub fn type_phrase(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON number as the reducers see it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn of(value: &Value, reducer: &'static str) -> Result<Num, ReduceError> {
        match value {
            Value::Number(n) => Num::of_number(n, reducer),
            other => Err(ReduceError::NotANumber {
                reducer,
                found: type_phrase(other),
            }),
        }
    }

    fn of_number(n: &Number, reducer: &'static str) -> Result<Num, ReduceError> {
        let text = n.as_str();
        if let Some(int) = parse_int(text) {
            int.map(Num::Int)
                .ok_or_else(|| ReduceError::IntegerTooLarge {
                    reducer,
                    digits: text.to_string(),
                })
        } else {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(Num::Float)
                .ok_or(ReduceError::FloatOverflow { reducer })
        }
    }

    fn to_value(self) -> Value {
        match self {
            Num::Int(i) => int_value(i),
            Num::Float(f) => float_value(f),
        }
    }

    /// Exact comparison, also between an integer and a float.
    fn cmp(self, other: Num) -> Ordering {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => a.total_cmp(&b),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }
}

/// `None` when `text` is not written as an integer (so it is a float);
/// `Some(None)` when it is one but beyond the 128-bit range. One pass, no
/// allocation: this is the hot path of every map leaf.
fn parse_int(text: &str) -> Option<Option<i128>> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', rest @ ..] => (true, rest),
        all => (false, all),
    };
    if digits.is_empty() {
        return None;
    }
    let mut value: i128 = 0;
    let mut in_range = true;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        let digit = i128::from(b - b'0');
        // Accumulate towards the sign so that i128::MIN parses too.
        let next = value.checked_mul(10).and_then(|v| {
            if negative {
                v.checked_sub(digit)
            } else {
                v.checked_add(digit)
            }
        });
        match next {
            Some(v) => value = v,
            None => in_range = false,
        }
    }
    Some(in_range.then_some(value))
}

/// Compares an integer with a (finite) float without rounding the integer.
fn cmp_int_float(a: i128, b: f64) -> Ordering {
    // 2^127 is exactly representable; every i128 is below it and at or above -2^127.
    const TWO_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if b >= TWO_127 {
        return Ordering::Less;
    }
    if b < -TWO_127 {
        return Ordering::Greater;
    }
    let whole = b.trunc();
    // In range, so the cast is exact.
    let whole_int = whole as i128;
    match a.cmp(&whole_int) {
        Ordering::Equal => 0.0f64.total_cmp(&(b - whole)).then(Ordering::Equal),
        unequal => unequal,
    }
}

/// A JSON integer of any size (serde_json's `arbitrary_precision` keeps the
/// decimal digits as written).
pub fn int_value(i: i128) -> Value {
    Value::Number(Number::from(i))
}

fn float_value(f: f64) -> Value {
    Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// An exact integer sum plus, once a float was seen, a float part.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct ExactSum {
    int: i128,
    float: Option<f64>,
}

impl ExactSum {
    fn add(&mut self, n: Num, reducer: &'static str) -> Result<(), ReduceError> {
        match n {
            Num::Int(i) => {
                self.int = self
                    .int
                    .checked_add(i)
                    .ok_or(ReduceError::IntegerOverflow { reducer })?;
            }
            Num::Float(f) => self.float = Some(self.float.unwrap_or(0.0) + f),
        }
        self.check(reducer)
    }

    fn merge(&mut self, other: &ExactSum, reducer: &'static str) -> Result<(), ReduceError> {
        self.int = self
            .int
            .checked_add(other.int)
            .ok_or(ReduceError::IntegerOverflow { reducer })?;
        if let Some(f) = other.float {
            self.float = Some(self.float.unwrap_or(0.0) + f);
        }
        self.check(reducer)
    }

    fn check(&self, reducer: &'static str) -> Result<(), ReduceError> {
        match self.float {
            Some(_) if !self.as_f64().is_finite() => Err(ReduceError::FloatOverflow { reducer }),
            _ => Ok(()),
        }
    }

    fn as_f64(&self) -> f64 {
        self.int as f64 + self.float.unwrap_or(0.0)
    }

    fn total(&self) -> Num {
        match self.float {
            None => Num::Int(self.int),
            Some(_) => Num::Float(self.as_f64()),
        }
    }

    fn write(&self, obj: &mut Map<String, Value>) {
        obj.insert("sum".into(), int_value(self.int));
        if let Some(f) = self.float {
            obj.insert("floatSum".into(), float_value(f));
        }
    }

    fn read(obj: &Map<String, Value>, reducer: &'static str) -> Result<ExactSum, ReduceError> {
        let int = match obj.get("sum") {
            Some(v) => match Num::of(v, reducer)? {
                Num::Int(i) => i,
                Num::Float(_) => return Err(malformed("'sum' must be an integer")),
            },
            None => return Err(malformed("'sum' is missing")),
        };
        let float = match obj.get("floatSum") {
            None => None,
            Some(v) => match Num::of(v, reducer)? {
                Num::Int(i) => Some(i as f64),
                Num::Float(f) => Some(f),
            },
        };
        Ok(ExactSum { int, float })
    }
}

#[derive(Clone, Debug, PartialEq)]
enum State {
    Sum(ExactSum),
    Count,
    Extreme(Option<Num>),
    Mean(ExactSum),
    Collect(Vec<Value>),
    Merge(Option<Value>),
}

/// A reducer's running state over the values seen so far.
#[derive(Clone, Debug, PartialEq)]
pub struct Accumulator {
    reducer: BuiltinReducer,
    count: u64,
    state: State,
}

impl Accumulator {
    pub fn new(reducer: BuiltinReducer) -> Accumulator {
        let state = match reducer {
            BuiltinReducer::Sum => State::Sum(ExactSum::default()),
            BuiltinReducer::Count => State::Count,
            BuiltinReducer::Min | BuiltinReducer::Max => State::Extreme(None),
            BuiltinReducer::Mean => State::Mean(ExactSum::default()),
            BuiltinReducer::Collect => State::Collect(Vec::new()),
            BuiltinReducer::Merge => State::Merge(None),
        };
        Accumulator {
            reducer,
            count: 0,
            state,
        }
    }

    pub fn reducer(&self) -> BuiltinReducer {
        self.reducer
    }

    /// Items seen (added, or counted by merged accumulators).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Folds in one item result. On error the accumulator is unchanged.
    pub fn add(&mut self, value: &Value) -> Result<(), ReduceError> {
        let name = self.reducer.name();
        match &mut self.state {
            State::Sum(sum) | State::Mean(sum) => {
                let mut next = *sum;
                next.add(Num::of(value, name)?, name)?;
                *sum = next;
            }
            State::Count => {}
            State::Extreme(best) => {
                let n = Num::of(value, name)?;
                *best = Some(pick(self.reducer, *best, n));
            }
            State::Collect(items) => {
                if items.len() < COLLECT_CAP {
                    items.push(value.clone());
                }
            }
            State::Merge(acc) => match acc {
                None => *acc = Some(value.clone()),
                Some(current) => {
                    let mut next = current.clone();
                    deep_merge(&mut next, value)?;
                    *current = next;
                }
            },
        }
        self.count += 1;
        Ok(())
    }

    /// Folds in the accumulator of a later sibling (its values come after
    /// this one's). On error the accumulator is unchanged.
    pub fn merge(&mut self, other: &Accumulator) -> Result<(), ReduceError> {
        let name = self.reducer.name();
        let mismatch = || ReduceError::Mismatch {
            into: name,
            from: other.reducer.name(),
        };
        if self.reducer != other.reducer {
            return Err(mismatch());
        }
        match (&mut self.state, &other.state) {
            (State::Sum(a), State::Sum(b)) | (State::Mean(a), State::Mean(b)) => {
                let mut next = *a;
                next.merge(b, name)?;
                *a = next;
            }
            (State::Count, State::Count) => {}
            (State::Extreme(a), State::Extreme(b)) => {
                if let Some(n) = b {
                    *a = Some(pick(self.reducer, *a, *n));
                }
            }
            (State::Collect(a), State::Collect(b)) => {
                let room = COLLECT_CAP.saturating_sub(a.len());
                a.extend(b.iter().take(room).cloned());
            }
            (State::Merge(a), State::Merge(b)) => match (a, b) {
                (_, None) => {}
                (a @ None, Some(b)) => *a = Some(b.clone()),
                (Some(a), Some(b)) => {
                    let mut next = a.clone();
                    deep_merge(&mut next, b)?;
                    *a = next;
                }
            },
            _ => return Err(mismatch()),
        }
        self.count = self.count.saturating_add(other.count);
        Ok(())
    }

    /// The value a user sees.
    pub fn finish(&self) -> Value {
        if self.count == 0 {
            return empty_value(self.reducer);
        }
        match &self.state {
            State::Sum(sum) => sum.total().to_value(),
            State::Count => Value::from(self.count),
            State::Extreme(best) => best.map(Num::to_value).unwrap_or(Value::Null),
            State::Mean(sum) => float_value(sum.as_f64() / self.count as f64),
            State::Collect(items) => {
                if self.count as usize <= items.len() {
                    Value::Array(items.clone())
                } else {
                    let mut obj = Map::new();
                    obj.insert("items".into(), Value::Array(items.clone()));
                    obj.insert("truncated".into(), Value::Bool(true));
                    obj.insert("count".into(), Value::from(self.count));
                    Value::Object(obj)
                }
            }
            State::Merge(acc) => acc.clone().unwrap_or_else(|| empty_value(self.reducer)),
        }
    }

    /// The stored / wire form: `{"reducer": "sum", "count": 3, "sum": 14}`,
    /// plus `floatSum` for sum and mean once a float was seen; `value` for
    /// min, max and merge; `items` for collect.
    pub fn to_value(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("reducer".into(), Value::from(self.reducer.name()));
        obj.insert("count".into(), Value::from(self.count));
        match &self.state {
            State::Sum(sum) | State::Mean(sum) => sum.write(&mut obj),
            State::Count => {}
            State::Extreme(best) => {
                obj.insert(
                    "value".into(),
                    best.map(Num::to_value).unwrap_or(Value::Null),
                );
            }
            State::Collect(items) => {
                obj.insert("items".into(), Value::Array(items.clone()));
            }
            State::Merge(acc) => {
                if let Some(v) = acc {
                    obj.insert("value".into(), v.clone());
                }
            }
        }
        Value::Object(obj)
    }

    /// Reads [`Accumulator::to_value`]'s form back.
    pub fn from_value(value: &Value) -> Result<Accumulator, ReduceError> {
        let obj = value
            .as_object()
            .ok_or_else(|| malformed(&format!("expected an object, got {}", type_phrase(value))))?;
        let reducer = match obj.get("reducer") {
            Some(Value::String(name)) => BuiltinReducer::from_name(name)
                .ok_or_else(|| malformed(&format!("unknown reducer '{name}'")))?,
            _ => return Err(malformed("'reducer' must be a built-in reducer name")),
        };
        let count = obj
            .get("count")
            .and_then(Value::as_u64)
            .ok_or_else(|| malformed("'count' must be a non-negative integer"))?;
        let name = reducer.name();
        let state = match reducer {
            BuiltinReducer::Sum => State::Sum(ExactSum::read(obj, name)?),
            BuiltinReducer::Mean => State::Mean(ExactSum::read(obj, name)?),
            BuiltinReducer::Count => State::Count,
            BuiltinReducer::Min | BuiltinReducer::Max => match obj.get("value") {
                None | Some(Value::Null) => State::Extreme(None),
                Some(v) => State::Extreme(Some(Num::of(v, name)?)),
            },
            BuiltinReducer::Collect => match obj.get("items") {
                Some(Value::Array(items)) if items.len() <= COLLECT_CAP => {
                    if items.len() as u64 != count.min(COLLECT_CAP as u64) {
                        return Err(malformed("collect's items do not match its count"));
                    }
                    State::Collect(items.clone())
                }
                _ => {
                    return Err(malformed(&format!(
                        "collect needs 'items', an array of at most {COLLECT_CAP} values"
                    )));
                }
            },
            BuiltinReducer::Merge => State::Merge(obj.get("value").cloned()),
        };
        Ok(Accumulator {
            reducer,
            count,
            state,
        })
    }
}

impl Serialize for Accumulator {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_value().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Accumulator {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Accumulator::from_value(&value).map_err(serde::de::Error::custom)
    }
}

fn malformed(why: &str) -> ReduceError {
    ReduceError::Malformed(why.to_string())
}

/// min keeps the smaller, max the larger; the earlier of equal values stays.
fn pick(reducer: BuiltinReducer, current: Option<Num>, candidate: Num) -> Num {
    match current {
        None => candidate,
        Some(cur) => {
            let better = match reducer {
                BuiltinReducer::Max => candidate.cmp(cur) == Ordering::Greater,
                _ => candidate.cmp(cur) == Ordering::Less,
            };
            if better { candidate } else { cur }
        }
    }
}

/// Deep merge of `later` into `acc`: objects key by key, numbers added
/// exactly, arrays concatenated, otherwise `later` wins.
pub fn deep_merge(acc: &mut Value, later: &Value) -> Result<(), ReduceError> {
    const NAME: &str = "merge";
    match (acc, later) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, bv) in b {
                match a.get_mut(key) {
                    Some(av) => deep_merge(av, bv)?,
                    None => {
                        a.insert(key.clone(), bv.clone());
                    }
                }
            }
        }
        (Value::Number(a), Value::Number(b)) => {
            let mut sum = ExactSum::default();
            sum.add(Num::of_number(a, NAME)?, NAME)?;
            sum.add(Num::of_number(b, NAME)?, NAME)?;
            *a = match sum.total().to_value() {
                Value::Number(n) => n,
                _ => return Err(ReduceError::FloatOverflow { reducer: NAME }),
            };
        }
        (Value::Array(a), Value::Array(b)) => a.extend(b.iter().cloned()),
        (acc, later) => *acc = later.clone(),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn acc(reducer: BuiltinReducer, values: &[Value]) -> Accumulator {
        let mut a = Accumulator::new(reducer);
        for v in values {
            a.add(v).unwrap();
        }
        a
    }

    fn via_wire(a: &Accumulator) -> Accumulator {
        let text = serde_json::to_string(&a.to_value()).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        Accumulator::from_value(&value).unwrap()
    }

    #[test]
    fn squares_of_ten_million_merged_in_chunks_are_exact() {
        const N: i64 = 10_000_000;
        const CHUNK: i64 = 10_000;
        let mut root = Accumulator::new(BuiltinReducer::Sum);
        let mut middle = Accumulator::new(BuiltinReducer::Sum);
        for (i, start) in (0..N).step_by(CHUNK as usize).enumerate() {
            let mut leaf = Accumulator::new(BuiltinReducer::Sum);
            for x in start..start + CHUNK {
                leaf.add(&Value::from(x * x)).unwrap();
            }
            middle.merge(&via_wire(&leaf)).unwrap();
            if i % 8 == 7 {
                root.merge(&via_wire(&middle)).unwrap();
                middle = Accumulator::new(BuiltinReducer::Sum);
            }
        }
        root.merge(&via_wire(&middle)).unwrap();
        assert_eq!(root.count(), N as u64);
        let total = root.finish();
        assert_eq!(total.to_string(), "333333283333335000000");
        assert_eq!(
            serde_json::to_string(&json!({ "result": total })).unwrap(),
            r#"{"result":333333283333335000000}"#
        );
        assert!(total.as_u64().is_none(), "beyond u64, still an integer");
    }

    #[test]
    fn sum_overflow_is_an_error_not_a_wrap() {
        let max = int_value(i128::MAX);
        let mut a = acc(BuiltinReducer::Sum, std::slice::from_ref(&max));
        let err = a.add(&json!(1)).unwrap_err();
        assert_eq!(err, ReduceError::IntegerOverflow { reducer: "sum" });
        assert!(err.to_string().starts_with("sum overflowed"), "{err}");
        assert_eq!(a.finish(), max, "unchanged after the error");
        assert_eq!(a.count(), 1);

        let mut b = acc(BuiltinReducer::Sum, &[int_value(i128::MAX)]);
        assert!(matches!(
            b.merge(&acc(BuiltinReducer::Sum, &[json!(5)])),
            Err(ReduceError::IntegerOverflow { .. })
        ));
        let mut low = acc(BuiltinReducer::Sum, &[int_value(i128::MIN)]);
        assert!(low.add(&json!(-1)).is_err());

        let huge: Value = serde_json::from_str("1000000000000000000000000000000000000000").unwrap();
        let err = Accumulator::new(BuiltinReducer::Sum)
            .add(&huge)
            .unwrap_err();
        assert!(
            matches!(err, ReduceError::IntegerTooLarge { .. }),
            "{err:?}"
        );
        let mut f = acc(BuiltinReducer::Sum, &[json!(1.5e308)]);
        assert_eq!(
            f.add(&json!(1.5e308)).unwrap_err(),
            ReduceError::FloatOverflow { reducer: "sum" }
        );
    }

    #[test]
    fn sum_of_integers_stays_integer_and_a_float_makes_it_float() {
        assert_eq!(
            acc(BuiltinReducer::Sum, &[json!(1), json!(2), json!(-3)]).finish(),
            json!(0)
        );
        let f = acc(BuiltinReducer::Sum, &[json!(1), json!(2.5)]).finish();
        assert_eq!(f.as_f64(), Some(3.5));
        assert!(f.is_f64());
        let whole = acc(BuiltinReducer::Sum, &[json!(1), json!(2.0)]).finish();
        assert_eq!(whole.to_string(), "3.0", "a float sum stays a float");
        let err = Accumulator::new(BuiltinReducer::Sum)
            .add(&json!("7"))
            .unwrap_err();
        assert_eq!(err.to_string(), "sum needs numbers, got a string");
    }

    #[test]
    fn identities_of_no_values() {
        assert_eq!(empty_value(BuiltinReducer::Sum), json!(0));
        assert_eq!(empty_value(BuiltinReducer::Count), json!(0));
        assert_eq!(empty_value(BuiltinReducer::Min), Value::Null);
        assert_eq!(empty_value(BuiltinReducer::Max), Value::Null);
        assert_eq!(empty_value(BuiltinReducer::Mean), Value::Null);
        assert_eq!(empty_value(BuiltinReducer::Collect), json!([]));
        assert_eq!(empty_value(BuiltinReducer::Merge), json!({}));
        for r in BuiltinReducer::ALL {
            assert_eq!(Accumulator::new(r).finish(), empty_value(r), "{r:?}");
            assert_eq!(via_wire(&Accumulator::new(r)).finish(), empty_value(r));
        }
    }

    #[test]
    fn count_counts_any_items_and_merges() {
        let mut a = acc(BuiltinReducer::Count, &[json!(null), json!("x"), json!({})]);
        a.merge(&acc(BuiltinReducer::Count, &[json!(1), json!(2)]))
            .unwrap();
        assert_eq!(a.finish(), json!(5));
        assert_eq!(a.count(), 5);
    }

    #[test]
    fn min_max_over_mixed_ints_and_floats() {
        let values = [json!(3), json!(2.5), json!(7), json!(-1.25), json!(-1)];
        assert_eq!(acc(BuiltinReducer::Min, &values).finish(), json!(-1.25));
        assert_eq!(acc(BuiltinReducer::Max, &values).finish(), json!(7));
        // Exact comparison beyond f64 precision: 2^53 + 1 > 2^53 as a float.
        let big = json!(9_007_199_254_740_993i64);
        let as_float = json!(9_007_199_254_740_992.0);
        assert_eq!(
            acc(BuiltinReducer::Max, &[as_float.clone(), big.clone()]).finish(),
            big
        );
        assert_eq!(
            acc(BuiltinReducer::Min, &[big.clone(), as_float.clone()]).finish(),
            as_float
        );
        // Equal values: the first one stays (int 2 before float 2.0).
        assert_eq!(
            acc(BuiltinReducer::Min, &[json!(2), json!(2.0)])
                .finish()
                .to_string(),
            "2"
        );
        // Integers beyond 64 bits.
        let huge = int_value(1i128 << 100);
        assert_eq!(
            acc(BuiltinReducer::Max, &[json!(1e30), huge.clone()]).finish(),
            huge
        );
        assert_eq!(
            acc(BuiltinReducer::Max, &[json!(1e300), huge.clone()]).finish(),
            json!(1e300)
        );
        // Merged halves agree with one pass.
        let mut left = acc(BuiltinReducer::Min, &values[..2]);
        left.merge(&via_wire(&acc(BuiltinReducer::Min, &values[2..])))
            .unwrap();
        assert_eq!(left.finish(), json!(-1.25));
        let err = Accumulator::new(BuiltinReducer::Max)
            .add(&json!({"a": 1}))
            .unwrap_err();
        assert_eq!(err.to_string(), "max needs numbers, got an object");
        let err = Accumulator::new(BuiltinReducer::Min)
            .add(&json!(null))
            .unwrap_err();
        assert_eq!(err.to_string(), "min needs numbers, got null");
    }

    #[test]
    fn parses_integers_exactly() {
        assert_eq!(parse_int("0"), Some(Some(0)));
        assert_eq!(parse_int("-0"), Some(Some(0)));
        assert_eq!(parse_int("-42"), Some(Some(-42)));
        assert_eq!(parse_int(&i128::MAX.to_string()), Some(Some(i128::MAX)));
        assert_eq!(parse_int(&i128::MIN.to_string()), Some(Some(i128::MIN)));
        assert_eq!(
            parse_int("170141183460469231731687303715884105728"),
            Some(None)
        );
        assert_eq!(parse_int("1.0"), None);
        assert_eq!(parse_int("1e5"), None);
        assert_eq!(parse_int("-"), None);
        assert_eq!(parse_int(""), None);
    }

    #[test]
    fn cmp_int_float_edges() {
        assert_eq!(cmp_int_float(0, -0.0), Ordering::Equal);
        assert_eq!(cmp_int_float(1, 0.5), Ordering::Greater);
        assert_eq!(cmp_int_float(-1, -0.5), Ordering::Less);
        assert_eq!(cmp_int_float(-1, -1.5), Ordering::Greater);
        assert_eq!(cmp_int_float(i128::MAX, 1.7e38), Ordering::Greater);
        assert_eq!(cmp_int_float(i128::MAX, 1.8e38), Ordering::Less);
        assert_eq!(cmp_int_float(i128::MIN, -1.8e38), Ordering::Greater);
        assert_eq!(
            cmp_int_float(
                i128::MIN,
                -170_141_183_460_469_231_731_687_303_715_884_105_728.0
            ),
            Ordering::Equal
        );
    }

    #[test]
    fn mean_is_exact_sum_over_count() {
        let mut a = acc(BuiltinReducer::Mean, &[json!(1), json!(2)]);
        a.merge(&via_wire(&acc(BuiltinReducer::Mean, &[json!(6)])))
            .unwrap();
        assert_eq!(a.finish(), json!(3.0));
        assert_eq!(a.count(), 3);
        let f = acc(BuiltinReducer::Mean, &[json!(1), json!(0.5)]);
        assert_eq!(f.finish(), json!(0.75));
        // Large integers: no precision lost before the division.
        let big = int_value(1i128 << 80);
        assert_eq!(
            acc(BuiltinReducer::Mean, &[big.clone(), big]).finish(),
            json!(2f64.powi(80))
        );
        assert_eq!(Accumulator::new(BuiltinReducer::Mean).finish(), Value::Null);
    }

    #[test]
    fn collect_keeps_order_and_caps() {
        let mut a = acc(BuiltinReducer::Collect, &[json!(1), json!("b")]);
        a.merge(&acc(BuiltinReducer::Collect, &[json!({"c": 3})]))
            .unwrap();
        assert_eq!(a.finish(), json!([1, "b", {"c": 3}]));

        let values: Vec<Value> = (0..COLLECT_CAP as i64 + 5).map(Value::from).collect();
        let whole = acc(BuiltinReducer::Collect, &values);
        let finished = whole.finish();
        assert_eq!(finished["truncated"], json!(true));
        assert_eq!(finished["count"], json!(COLLECT_CAP + 5));
        let items = finished["items"].as_array().unwrap();
        assert_eq!(items.len(), COLLECT_CAP);
        assert_eq!(items[..], values[..COLLECT_CAP]);

        // Exactly at the cap: still the plain list.
        let at_cap = acc(BuiltinReducer::Collect, &values[..COLLECT_CAP]);
        assert_eq!(at_cap.finish().as_array().unwrap().len(), COLLECT_CAP);

        // In chunks, through the wire: the same first 10,000 in order.
        let mut merged = Accumulator::new(BuiltinReducer::Collect);
        for chunk in values.chunks(3333) {
            merged
                .merge(&via_wire(&acc(BuiltinReducer::Collect, chunk)))
                .unwrap();
        }
        assert_eq!(merged.finish(), finished);
        assert_eq!(via_wire(&merged), merged);
    }

    #[test]
    fn merge_adds_word_counts() {
        let lines = [
            json!({"the": 1, "cat": 1}),
            json!({"the": 2, "dog": 1}),
            json!({"cat": 1}),
        ];
        let one_pass = acc(BuiltinReducer::Merge, &lines);
        assert_eq!(one_pass.finish(), json!({"the": 3, "cat": 2, "dog": 1}));
        let mut left = acc(BuiltinReducer::Merge, &lines[..1]);
        left.merge(&via_wire(&acc(BuiltinReducer::Merge, &lines[1..])))
            .unwrap();
        assert_eq!(left.finish(), one_pass.finish());
        assert_eq!(left.count(), 3);
    }

    #[test]
    fn merge_is_deep() {
        let a = json!({"n": {"x": 1, "tags": ["a"], "name": "old", "f": 1}, "k": 1});
        let b = json!({"n": {"x": 2, "tags": ["b"], "name": "new", "f": 0.5}, "k": "s"});
        let merged = acc(BuiltinReducer::Merge, &[a, b]).finish();
        assert_eq!(
            merged,
            json!({"n": {"x": 3, "tags": ["a", "b"], "name": "new", "f": 1.5}, "k": "s"})
        );
        let big = acc(
            BuiltinReducer::Merge,
            &[json!({"w": u64::MAX}), json!({"w": u64::MAX})],
        );
        assert_eq!(big.finish()["w"].to_string(), "36893488147419103230");
        let mut over = acc(BuiltinReducer::Merge, &[json!({"w": int_value(i128::MAX)})]);
        assert_eq!(
            over.add(&json!({"w": 1})).unwrap_err(),
            ReduceError::IntegerOverflow { reducer: "merge" }
        );
        assert_eq!(over.finish(), json!({"w": int_value(i128::MAX)}));
    }

    #[test]
    fn accumulator_value_round_trip() {
        let cases = [
            acc(BuiltinReducer::Sum, &[json!(1), int_value(1i128 << 90)]),
            acc(BuiltinReducer::Sum, &[json!(1), json!(0.5)]),
            acc(BuiltinReducer::Count, &[json!(1), json!(null)]),
            acc(BuiltinReducer::Min, &[json!(4), json!(-2.5)]),
            acc(BuiltinReducer::Max, &[int_value(-(1i128 << 70))]),
            acc(BuiltinReducer::Mean, &[json!(1), json!(2)]),
            acc(BuiltinReducer::Collect, &[json!([1]), json!({"a": null})]),
            acc(BuiltinReducer::Merge, &[json!({"a": 1}), json!({"a": 2})]),
        ];
        for a in cases {
            let back = via_wire(&a);
            assert_eq!(back, a);
            assert_eq!(back.finish(), a.finish());
            let through_serde: Accumulator =
                serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
            assert_eq!(through_serde, a);
        }
        assert_eq!(
            acc(BuiltinReducer::Sum, &[json!(4), json!(5)]).to_value(),
            json!({"reducer": "sum", "count": 2, "sum": 9})
        );
        assert_eq!(
            acc(BuiltinReducer::Max, &[json!(4), json!(5)]).to_value(),
            json!({"reducer": "max", "count": 2, "value": 5})
        );
    }

    #[test]
    fn malformed_accumulators_and_mismatches_are_errors() {
        for bad in [
            json!(3),
            json!({"reducer": "avg", "count": 0}),
            json!({"reducer": "sum"}),
            json!({"reducer": "sum", "count": -1, "sum": 0}),
            json!({"reducer": "sum", "count": 1}),
            json!({"reducer": "sum", "count": 1, "sum": 1.5}),
            json!({"reducer": "min", "count": 1, "value": "x"}),
            json!({"reducer": "collect", "count": 1}),
            json!({"reducer": "collect", "count": 1, "items": [1, 2]}),
        ] {
            assert!(Accumulator::from_value(&bad).is_err(), "{bad}");
        }
        let mut sum = Accumulator::new(BuiltinReducer::Sum);
        let err = sum
            .merge(&Accumulator::new(BuiltinReducer::Count))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot merge a count accumulator into a sum accumulator"
        );
    }
}
