//! The seed design's examples ("Practical Functional Distributed
//! Programming") as a Rust worker. Python's `@task` pickles a closure; here a
//! closure is an FnRef: a registered name plus its bound arguments (the
//! captures), so it can be sent to another task, passed as an argument,
//! handed to a continuation and compared by stable id.
//!
//! | seed | here |
//! |---|---|
//! | `DoSum(4, 5, OnSuccess)` | a Task calling `seed.do_sum` with `onSuccess: seed.success_handler` |
//! | the same, `OnSuccess` in the same task | `seed.do_sum_cps` calls its `onSuccess` argument inline |
//! | `GenerateSuccessHandler(7)` | [`generate_success_handler`]: `seed.add_c` with `c` bound |
//! | `ApplyFunctionToArgs(lambda, 4, 5, HandleResult)` | `seed.apply_function_to_args` with `f` a `$fn` value of `seed.add` |
//! | `GenerateApplyFunc(lambda, 4, 5, HandleApply)` | `seed.generate_apply_func` spawns its handler with `seed.apply_f` (f, a, b bound) |
//! | `x = DoesSomething; x()` | a [`TypedFn`] handle in a variable, `.call(..)` |
//! | `UpdatePerson("1234")` debounced | `seed.update_person` in a Task with `debounce` |
//!
//! Functions record what they saw in a [`Journal`] (the seed's
//! `logging.debug`), so tests can check the values the continuations computed.

use kontinuum_api::FnRef;
use kontinuum_worker::{BindArgsError, Ctx, FnError, FnRefExt, Registry, TypedFn, fn_value};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

/// What the functions logged and how often each person was updated, shared
/// by every clone (the registered closures hold one each).
#[derive(Clone, Default)]
pub struct Journal {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Default)]
struct Entries {
    log: Vec<(String, Value)>,
    updates: HashMap<String, u32>,
}

impl Journal {
    fn log(&self, who: &str, value: Value) {
        tracing::info!(function = who, %value, "seed log");
        self.inner.lock().log.push((who.to_string(), value));
    }

    /// The values `who` logged, in order.
    pub fn logged(&self, who: &str) -> Vec<Value> {
        let entries = self.inner.lock();
        entries
            .log
            .iter()
            .filter(|(w, _)| w == who)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Runs of `seed.update_person` per person id.
    pub fn updates(&self) -> HashMap<String, u32> {
        self.inner.lock().updates.clone()
    }
}

#[derive(Serialize, Deserialize, Debug, Clone, Copy)]
pub struct Sum {
    pub a: i64,
    pub b: i64,
}

/// The seed's literal `DoSum(a, b, OnSuccess)`: continuation passing style,
/// the handler runs inline in the same task and its value is the result.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct SumThen {
    pub a: i64,
    pub b: i64,
    #[serde(with = "fn_value")]
    pub on_success: FnRef,
}

/// A continuation's argument: the engine binds the task's result as `result`.
#[derive(Serialize, Deserialize, Debug)]
pub struct Outcome {
    pub result: i64,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct Captured {
    pub result: i64,
    pub c: i64,
}

/// `f` applied to `a` and `b`; optionally handed on to `handle_result`.
#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ApplyArgs {
    #[serde(with = "fn_value")]
    pub f: FnRef,
    pub a: i64,
    pub b: i64,
    #[serde(
        default,
        with = "fn_value::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub handle_result: Option<FnRef>,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct GenerateArgs {
    #[serde(with = "fn_value")]
    pub f: FnRef,
    pub a: i64,
    pub b: i64,
    #[serde(with = "fn_value")]
    pub handler: FnRef,
}

/// What `seed.generate_apply_func` hands its continuation: a function of no
/// arguments (everything it needs is bound).
#[derive(Serialize, Deserialize, Debug)]
pub struct HandleApplyArgs {
    #[serde(with = "fn_value")]
    pub applyf: FnRef,
}

#[derive(Serialize, Deserialize, Debug)]
pub struct NoArgs {}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub person_id: String,
}

/// Handles on every seed function, for building calls without spelling names.
#[derive(Clone, Debug)]
pub struct Seed {
    pub do_sum: TypedFn<Sum, i64>,
    pub do_sum_cps: TypedFn<SumThen, Value>,
    pub add: TypedFn<Sum, i64>,
    pub success_handler: TypedFn<Outcome, i64>,
    pub add_c: TypedFn<Captured, i64>,
    pub apply_function_to_args: TypedFn<ApplyArgs, i64>,
    pub handle_result: TypedFn<Outcome, i64>,
    pub generate_apply_func: TypedFn<GenerateArgs, String>,
    pub apply_f: TypedFn<ApplyFArgs, i64>,
    pub handle_apply: TypedFn<HandleApplyArgs, i64>,
    pub does_something: TypedFn<NoArgs, String>,
    pub nine: TypedFn<NoArgs, i64>,
    pub update_person: TypedFn<Person, u32>,
}

/// The seed's `GenerateSuccessHandler(c)`: a success handler closing over `c`.
pub fn generate_success_handler(seed: &Seed, c: i64) -> Result<FnRef, BindArgsError> {
    seed.add_c.bind(&json!({ "c": c }))
}

/// A handler that logs its `result` under its own name and returns it.
fn logger(registry: &mut Registry, name: &str, journal: &Journal) -> TypedFn<Outcome, i64> {
    let (journal, who) = (journal.clone(), name.to_string());
    registry.function_sync(name, move |_, o: Outcome| {
        journal.log(&who, json!(o.result));
        Ok(o.result)
    })
}

/// Registers the seed's functions (and nothing else) in `registry`.
pub fn register(registry: &mut Registry, journal: &Journal) -> Seed {
    let do_sum = registry.function_sync("seed.do_sum", |_, s: Sum| checked_add(s));
    let do_sum_cps = registry.function("seed.do_sum_cps", |ctx: Ctx, x: SumThen| async move {
        let sum = checked_add(Sum { a: x.a, b: x.b })?;
        ctx.call_inline(&x.on_success.bind_with(&Outcome { result: sum })?)
            .await
    });
    let add = registry.function_sync("seed.add", |_, s: Sum| checked_add(s));
    let success_handler = logger(registry, "seed.success_handler", journal);
    let handle_result = logger(registry, "seed.handle_result", journal);

    let j = journal.clone();
    let add_c = registry.function_sync("seed.add_c", move |_, x: Captured| {
        let y = checked_add(Sum {
            a: x.result,
            b: x.c,
        })?;
        j.log("seed.add_c", json!(y));
        Ok(y)
    });

    // Both run `f` inline: the function argument executes in this task.
    let apply_function_to_args = registry.function(
        "seed.apply_function_to_args",
        |ctx: Ctx, x: ApplyArgs| async move {
            let r: i64 = ctx
                .call_as(&x.f.bind_with(&Sum { a: x.a, b: x.b })?)
                .await?;
            if let Some(handle) = x.handle_result {
                ctx.call_inline(&handle.bind_with(&Outcome { result: r })?)
                    .await?;
            }
            Ok(r)
        },
    );
    let apply_f = registry.function("seed.apply_f", |ctx: Ctx, x: ApplyFArgs| async move {
        ctx.call_as::<i64>(&x.f.bind_with(&Sum { a: x.a, b: x.b })?)
            .await
    });

    // The continuation gets a function value and runs as a new task.
    let apply = apply_f.clone();
    let generate_apply_func = registry.function(
        "seed.generate_apply_func",
        move |ctx: Ctx, x: GenerateArgs| {
            let applyf = apply.call(&ApplyFArgs {
                f: x.f,
                a: x.a,
                b: x.b,
            });
            async move {
                let handler = x.handler.bind_with(&HandleApplyArgs { applyf: applyf? })?;
                Ok(ctx.spawn_call(&handler).await?.to_string())
            }
        },
    );
    let j = journal.clone();
    let handle_apply =
        registry.function("seed.handle_apply", move |ctx: Ctx, x: HandleApplyArgs| {
            let j = j.clone();
            async move {
                let v: i64 = ctx.call_as(&x.applyf).await?;
                j.log("seed.handle_apply", json!(v));
                Ok(v)
            }
        });

    let j = journal.clone();
    let does_something = registry.function_sync("seed.does_something", move |_, _: NoArgs| {
        j.log("seed.does_something", json!("stuff"));
        Ok("did something".to_string())
    });
    let nine = registry.function_sync("seed.nine", |_, _: NoArgs| Ok(9));

    let j = journal.clone();
    let update_person = registry.function_sync("seed.update_person", move |_, p: Person| {
        let mut entries = j.inner.lock();
        let runs = entries.updates.entry(p.person_id).or_default();
        *runs += 1;
        Ok(*runs)
    });

    Seed {
        do_sum,
        do_sum_cps,
        add,
        success_handler,
        add_c,
        apply_function_to_args,
        handle_result,
        generate_apply_func,
        apply_f,
        handle_apply,
        does_something,
        nine,
        update_person,
    }
}

/// `seed.apply_f`'s bound arguments: the function and both operands.
#[derive(Serialize, Deserialize, Debug)]
pub struct ApplyFArgs {
    #[serde(with = "fn_value")]
    pub f: FnRef,
    pub a: i64,
    pub b: i64,
}

/// Overflow is a permanent error: the same numbers overflow on every retry.
fn checked_add(s: Sum) -> Result<i64, FnError> {
    s.a.checked_add(s.b)
        .ok_or_else(|| FnError::permanent(format!("{} + {} overflows a 64-bit integer", s.a, s.b)))
}
