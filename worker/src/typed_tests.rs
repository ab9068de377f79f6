use super::*;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Apply {
    #[serde(with = "crate::fn_value")]
    f: FnRef,
    #[serde(default, with = "crate::fn_value::option")]
    then: Option<FnRef>,
}

fn registry() -> (Registry, TypedFn<Add, i64>, TypedFn<Apply, i64>) {
    let mut r = Registry::new();
    let add = r.function_sync("t.add", |_, x: Add| Ok(x.a + x.b));
    let apply = r.function("t.apply", |ctx: Ctx, x: Apply| async move {
        let n: i64 = ctx.call_as(&x.f).await?;
        match x.then {
            Some(then) => ctx.call_as(&then.bind_with(&json!({ "result": n }))?).await,
            None => Ok(n),
        }
    });
    r.function("t.double", |_, x: Doubled| async move { Ok(x.result * 2) });
    (r, add, apply)
}

#[derive(Serialize, Deserialize)]
struct Doubled {
    result: i64,
}

fn run(ctx: &Ctx, call: &FnRef) -> FnResult {
    futures::executor::block_on(ctx.call_inline(call))
}

#[test]
fn typed_calls_run_and_bind_checks_names() {
    let (r, add, _) = registry();
    let ctx = Ctx::detached(Arc::new(r));
    let call = add.call(&Add { a: 4, b: 5 }).unwrap();
    assert_eq!(call, FnRef::new("t.add").arg("a", 4).arg("b", 5));
    assert_eq!(run(&ctx, &call), Ok(json!(9)));
    let add4 = add.bind(&json!({"a": 4})).unwrap();
    let err = add4.bind_with(&json!({"a": 1})).unwrap_err();
    assert_eq!(err.to_string(), "argument 'a' is already bound");
    assert!(FnError::from(err).permanent);
    let full = add4.bind_with(&json!({"b": 5})).unwrap();
    assert_eq!(full.stable_id(), call.stable_id());
    let typed = futures::executor::block_on(add.call_inline(&ctx, &full));
    assert_eq!(typed, Ok(9));
}

#[test]
fn binding_needs_named_arguments() {
    let (_, add, _) = registry();
    let err = add.bind(&7).unwrap_err();
    assert_eq!(
        err.to_string(),
        "arguments for 't.add' must be an object of named arguments, got a number"
    );
    let mut bad = std::collections::HashMap::new();
    bad.insert(vec![1u8], 2);
    assert!(matches!(
        add.bind(&bad),
        Err(BindArgsError::Serialize { .. })
    ));
}

#[test]
fn a_wrong_argument_type_is_permanent_and_names_the_field() {
    let (r, _, apply) = registry();
    let ctx = Ctx::detached(Arc::new(r));
    let err = run(&ctx, &FnRef::new("t.add").arg("a", "four").arg("b", 5)).unwrap_err();
    assert!(err.permanent);
    assert!(
        err.message.starts_with("argument 'a': invalid type"),
        "{}",
        err.message
    );
    let err = run(&ctx, &FnRef::new("t.add").arg("a", 4)).unwrap_err();
    assert!(err.message.contains("missing field `b`"), "{}", err.message);
    // An FnRef field given something that is not a `$fn` value.
    let err = run(&ctx, &apply.fnref().arg("f", 3)).unwrap_err();
    assert!(err.permanent);
    assert!(
        err.message
            .starts_with("argument 'f': expected a function value"),
        "{}",
        err.message
    );
    let err = run(&ctx, &apply.fnref().arg("f", json!({"$fn": 3}))).unwrap_err();
    assert!(
        err.message.starts_with("argument 'f': '$fn' value"),
        "{}",
        err.message
    );
}

#[test]
fn fnref_fields_travel_as_fn_values_and_run_inline() {
    let (r, add, apply) = registry();
    let ctx = Ctx::detached(Arc::new(r));
    let sum = add.call(&Add { a: 4, b: 5 }).unwrap();
    let args = Apply {
        f: sum.clone(),
        then: Some(FnRef::new("t.double")),
    };
    let call = apply.call(&args).unwrap();
    assert_eq!(call.args["f"], sum.to_value());
    assert_eq!(
        call.args["then"],
        json!({"$fn": {"function": "t.double", "args": {}}})
    );
    let back: Apply = serde_json::from_value(Value::Object(call.args.clone())).unwrap();
    assert_eq!(back, args);
    assert_eq!(run(&ctx, &call), Ok(json!(18)));
    let plain = apply.call(&Apply { f: sum, then: None }).unwrap();
    assert_eq!(plain.args.get("then"), Some(&Value::Null));
    assert_eq!(run(&ctx, &plain), Ok(json!(9)));
}

#[test]
fn typed_results_are_checked() {
    let (r, add, _) = registry();
    let ctx = Ctx::detached(Arc::new(r));
    let call = add.call(&Add { a: 1, b: 2 }).unwrap();
    let err = futures::executor::block_on(ctx.call_as::<String>(&call)).unwrap_err();
    assert!(err.permanent);
    assert!(
        err.message.contains("the result of 't.add'"),
        "{}",
        err.message
    );
    let other: TypedFn<Add, i64> = TypedFn::named("t.other");
    let err = futures::executor::block_on(other.call_inline(&ctx, &call)).unwrap_err();
    assert_eq!(err.message, "'t.add' is not an FnRef of 't.other'");
    assert_eq!(format!("{:?}", other.clone()), "TypedFn(t.other)");
}

#[test]
fn unserializable_results_fail_permanently() {
    let mut r = Registry::new();
    let bad = r.function_sync("t.bad", |_, _: Value| {
        let mut m = std::collections::HashMap::new();
        m.insert(vec![1u8], 1);
        Ok(m)
    });
    let ctx = Ctx::detached(Arc::new(r));
    let err = run(&ctx, &bad.fnref()).unwrap_err();
    assert!(err.permanent);
    assert!(
        err.message
            .starts_with("the result of 't.bad' cannot be serialized"),
        "{}",
        err.message
    );
}
