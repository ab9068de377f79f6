//! std.echo, std.sum, std.square, std.sleep, std.fail, std.log.

use super::{as_str, wrong_type};
use crate::args::Args;
use crate::ctx::{Ctx, Function, IntKernel};
use crate::error::FnError;
use crate::invocation::{FnResult, Invocation, Scalar};
use kontinuum_api::BuiltinReducer;
use kontinuum_api::accumulator::{Accumulator, int_value};
use serde_json::{Map, Number, Value};
use std::time::Duration;

/// The arguments, as an object.
pub(super) fn echo(_: &Ctx, args: Args<'_>) -> FnResult {
    Ok(Value::Object(args.into_map()))
}

/// std.square, with an integer kernel so that a range map squaring and
/// summing needs no JSON number per item.
pub(super) struct Square;

impl Function for Square {
    fn invoke(&self, ctx: &Ctx, args: Args<'_>) -> Invocation {
        Invocation::Ready(square(ctx, args))
    }

    fn int_kernel(&self, _bound: &Map<String, Value>) -> Option<IntKernel<'_>> {
        // An i64 squared always fits in i128: the same value `square` gives.
        Some(Box::new(|i| Ok(Scalar::Int(i128::from(i) * i128::from(i)))))
    }
}

/// `{a, b}` or `{values: [..]}`: the sum, exact for integers as the `sum` reducer.
pub(super) fn sum(_: &Ctx, args: Args<'_>) -> FnResult {
    let mut acc = Accumulator::new(BuiltinReducer::Sum);
    let mut add = |name: &str, v: &Value| {
        if !v.is_number() {
            return Err(wrong_type(name, "a number", v));
        }
        acc.add(v).map_err(|e| FnError::bad_arg(name, e))
    };
    match args.get("values") {
        Some(Value::Array(values)) => {
            for (i, v) in values.iter().enumerate() {
                add(&format!("values[{i}]"), v)?;
            }
        }
        Some(other) => return Err(wrong_type("values", "an array of numbers", other)),
        None => {
            add("a", args.require("a")?)?;
            add("b", args.require("b")?)?;
        }
    }
    Ok(acc.finish())
}

/// `{item}`: item². Integers stay exact (an i64 squared always fits the
/// 128 bits a JSON integer result carries); floats square as floats.
fn square(_: &Ctx, args: Args<'_>) -> FnResult {
    let item = args.require("item")?;
    let Value::Number(n) = item else {
        return Err(wrong_type("item", "a number", item));
    };
    if let Some(i) = n.as_i64() {
        return Ok(int_value(i as i128 * i as i128));
    }
    if let Some(i) = n.as_i128() {
        return i.checked_mul(i).map(int_value).ok_or_else(|| {
            FnError::bad_arg("item", "its square leaves the 128-bit integer range")
        });
    }
    n.as_f64()
        .and_then(|f| Number::from_f64(f * f))
        .map(Value::Number)
        .ok_or_else(|| FnError::bad_arg("item", "its square is not a finite number"))
}

/// `{ms}`: null after that many milliseconds; returns early as a failure
/// when the task is cancelled.
pub(super) async fn sleep(ctx: Ctx, args: Args<'static>) -> FnResult {
    let ms = args.require("ms")?;
    let millis = match ms.as_u64() {
        Some(m) => m,
        None => match ms.as_f64() {
            Some(f) if f.is_finite() && f >= 0.0 => f.round() as u64,
            _ => {
                return Err(wrong_type(
                    "ms",
                    "a non-negative number of milliseconds",
                    ms,
                ));
            }
        },
    };
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(millis)) => Ok(Value::Null),
        _ = ctx.cancelled() => Err(FnError::retryable("cancelled")),
    }
}

/// `{message, permanent?}`: fails with that message (retryable unless `permanent: true`).
pub(super) fn fail(_: &Ctx, args: Args<'_>) -> FnResult {
    let message = as_str("message", args.require("message")?)?;
    let permanent = match args.get("permanent") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(wrong_type("permanent", "a boolean", other)),
    };
    Err(FnError {
        message: message.to_string(),
        permanent,
    })
}

/// Any arguments: logs them at info level, returns null.
pub(super) fn log(ctx: &Ctx, args: Args<'_>) -> FnResult {
    tracing::info!(target: "kontinuum::std_log", token = ctx.token(), args = %args.to_value(), "std.log");
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use crate::args::Args;
    use crate::ctx::Ctx;
    use crate::std_fns::std_registry;
    use serde_json::{Value, json};
    use std::sync::Arc;

    fn call(function: &str, args: Value) -> Result<Value, crate::error::FnError> {
        let ctx = Ctx::detached(Arc::new(std_registry()));
        let map = args.as_object().cloned().unwrap_or_default();
        futures::executor::block_on(ctx.invoke(function, Args::new(&map)).resolve())
    }

    #[test]
    fn echo_returns_the_args() {
        assert_eq!(
            call("std.echo", json!({"x": [1, "y"]})).unwrap(),
            json!({"x": [1, "y"]})
        );
        assert_eq!(call("std.echo", json!({})).unwrap(), json!({}));
    }

    #[test]
    fn sum_is_exact() {
        assert_eq!(call("std.sum", json!({"a": 4, "b": 5})).unwrap(), json!(9));
        let big = i64::MAX;
        let got = call("std.sum", json!({"values": [big, big, big]})).unwrap();
        assert_eq!(got.to_string(), "27670116110564327421");
        assert_eq!(
            call("std.sum", json!({"values": [1, 0.5]})).unwrap(),
            json!(1.5)
        );
        assert_eq!(call("std.sum", json!({"values": []})).unwrap(), json!(0));
    }

    #[test]
    fn sum_names_bad_arguments() {
        let e = call("std.sum", json!({"a": "4", "b": 5})).unwrap_err();
        assert!(e.permanent);
        assert_eq!(e.message, "argument 'a': expected a number, got a string");
        let e = call("std.sum", json!({"a": 4})).unwrap_err();
        assert_eq!(e.message, "missing argument 'b'");
        let e = call("std.sum", json!({"values": [1, null]})).unwrap_err();
        assert_eq!(
            e.message,
            "argument 'values[1]': expected a number, got null"
        );
        let e = call("std.sum", json!({"values": 3})).unwrap_err();
        assert!(e.message.starts_with("argument 'values'"), "{}", e.message);
    }

    #[test]
    fn square_keeps_integers_exact() {
        assert_eq!(call("std.square", json!({"item": -3})).unwrap(), json!(9));
        let got = call("std.square", json!({"item": i64::MIN})).unwrap();
        assert_eq!(got.to_string(), "85070591730234615865843651857942052864");
        let got = call("std.square", json!({"item": u64::MAX}));
        // u64::MAX² is beyond i128: a permanent error, never a wrap or a float.
        assert!(got.unwrap_err().message.contains("128-bit"));
        let got = call("std.square", json!({"item": u32::MAX as u64 * 4})).unwrap();
        assert_eq!(got.to_string(), ((u32::MAX as u128 * 4).pow(2)).to_string());
        assert_eq!(
            call("std.square", json!({"item": 1.5})).unwrap(),
            json!(2.25)
        );
        let e = call("std.square", json!({"item": "2"})).unwrap_err();
        assert!(e.permanent);
        assert_eq!(
            e.message,
            "argument 'item': expected a number, got a string"
        );
        assert_eq!(
            call("std.square", json!({})).unwrap_err().message,
            "missing argument 'item'"
        );
    }

    #[test]
    fn fail_fails_as_asked() {
        let e = call("std.fail", json!({"message": "boom"})).unwrap_err();
        assert_eq!((e.message.as_str(), e.permanent), ("boom", false));
        let e = call("std.fail", json!({"message": "bad", "permanent": true})).unwrap_err();
        assert!(e.permanent);
        let e = call("std.fail", json!({"message": 3})).unwrap_err();
        assert_eq!(
            e.message,
            "argument 'message': expected a string, got a number"
        );
        let e = call("std.fail", json!({"message": "x", "permanent": "yes"})).unwrap_err();
        assert_eq!(
            e.message,
            "argument 'permanent': expected a boolean, got a string"
        );
    }

    #[test]
    fn log_returns_null() {
        assert_eq!(call("std.log", json!({"note": "hi"})).unwrap(), Value::Null);
    }

    #[tokio::test]
    async fn sleep_sleeps_and_is_cancellable() {
        let ctx = Ctx::detached(Arc::new(std_registry()));
        let map = json!({"ms": 20}).as_object().cloned().unwrap();
        let t = std::time::Instant::now();
        assert_eq!(
            ctx.invoke("std.sleep", Args::new(&map))
                .resolve()
                .await
                .unwrap(),
            Value::Null
        );
        assert!(t.elapsed() >= std::time::Duration::from_millis(20));

        let map = json!({"ms": 60_000}).as_object().cloned().unwrap();
        let pending = ctx.invoke("std.sleep", Args::new(&map));
        let canceller = ctx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            canceller.cancel();
        });
        let e = tokio::time::timeout(std::time::Duration::from_secs(5), pending.resolve())
            .await
            .unwrap()
            .unwrap_err();
        assert_eq!(e.message, "cancelled");

        let map = json!({"ms": "soon"}).as_object().cloned().unwrap();
        let e = ctx
            .invoke("std.sleep", Args::new(&map))
            .resolve()
            .await
            .unwrap_err();
        assert!(e.permanent);
        assert!(e.message.starts_with("argument 'ms'"), "{}", e.message);
    }
}
