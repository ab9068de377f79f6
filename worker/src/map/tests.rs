//! Executing work directly (no runtime): map leaves over each slice kind,
//! both kinds of reducer, folds, and the lines exactly-once property.

use crate::ctx::Ctx;
use crate::error::FnError;
use crate::execute::execute;
use crate::registry::Registry;
use crate::std_fns::std_registry;
use kontinuum_api::accumulator::Accumulator;
use kontinuum_api::work::{Slice, Work};
use kontinuum_api::{BuiltinReducer, FnRef, Reducer};
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;

fn registry() -> Arc<Registry> {
    let mut r = std_registry();
    r.register_sync("test.add", |_, args| {
        let a = args.require("acc")?.as_i64().unwrap_or(0);
        let v = args.require("value")?.as_i64().unwrap_or(0);
        Ok(json!(a + v))
    });
    r.register("test.async_square", |ctx, args| async move {
        tokio::task::yield_now().await;
        ctx.invoke("std.square", args).resolve().await
    });
    Arc::new(r)
}

async fn run(work: Work) -> Result<Value, FnError> {
    execute(&Ctx::detached(registry()), work).await
}

fn leaf(function: &str, slice: Slice, reducer: Reducer) -> Work {
    Work::MapLeaf {
        function: FnRef::new(function),
        slice,
        reducer,
    }
}

fn finish(v: &Value) -> Value {
    Accumulator::from_value(v).unwrap().finish()
}

const SUM: Reducer = Reducer::Builtin(BuiltinReducer::Sum);

#[tokio::test]
async fn range_leaf_sums_squares_exactly() {
    let v = run(leaf(
        "std.square",
        Slice::Range {
            start: 0,
            end: 10_000,
        },
        SUM,
    ))
    .await
    .unwrap();
    let expected: i128 = (0..10_000i128).map(|i| i * i).sum();
    assert_eq!(finish(&v), json!(expected));
    assert_eq!(Accumulator::from_value(&v).unwrap().count(), 10_000);
    // Async functions take the same path, awaited per item.
    let v = run(leaf(
        "test.async_square",
        Slice::Range { start: -5, end: 5 },
        SUM,
    ))
    .await
    .unwrap();
    assert_eq!(finish(&v), json!(85));
}

#[tokio::test]
async fn items_leaf_passes_each_item() {
    let items = vec![json!(1), json!(2.5), json!(-3)];
    let collect = Reducer::Builtin(BuiltinReducer::Collect);
    let v = run(leaf(
        "std.square",
        Slice::Items { offset: 7, items },
        collect,
    ))
    .await
    .unwrap();
    assert_eq!(finish(&v), json!([1, 6.25, 9]));
}

#[tokio::test]
async fn fnref_reducer_folds_inline() {
    let add = Reducer::Function(FnRef::new("test.add"));
    let v = run(leaf(
        "std.square",
        Slice::Range { start: 1, end: 4 },
        add.clone(),
    ))
    .await
    .unwrap();
    assert_eq!(v, json!(14));
    let v = run(leaf("std.square", Slice::Range { start: 1, end: 1 }, add))
        .await
        .unwrap();
    assert_eq!(v, Value::Null);
    let fold = Work::Fold {
        reducer: FnRef::new("test.add"),
        values: vec![json!(1), json!(2), json!(3)],
    };
    assert_eq!(run(fold).await.unwrap(), json!(6));
    let fold = Work::Fold {
        reducer: FnRef::new("test.add"),
        values: vec![],
    };
    assert_eq!(run(fold).await.unwrap(), Value::Null);
    let bound = FnRef::new("test.add").arg("acc", 1);
    let e = run(Work::Fold {
        reducer: bound,
        values: vec![],
    })
    .await
    .unwrap_err();
    assert!(
        e.message.contains("argument 'acc' is already bound"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn bad_leaves_fail_permanently_with_reasons() {
    let bound = Work::MapLeaf {
        function: FnRef::new("std.square").arg("item", 1),
        slice: Slice::Range { start: 0, end: 3 },
        reducer: SUM,
    };
    let e = run(bound).await.unwrap_err();
    assert!(
        e.permanent && e.message.contains("argument 'item' is already bound"),
        "{}",
        e.message
    );
    let e = run(leaf("nope", Slice::Range { start: 0, end: 1 }, SUM))
        .await
        .unwrap_err();
    assert_eq!(
        e.message,
        "function 'nope' is not registered by the workers of pool 'local'"
    );
    let items = vec![json!(1), json!("x")];
    let e = run(leaf("std.square", Slice::Items { offset: 0, items }, SUM))
        .await
        .unwrap_err();
    assert!(
        e.permanent && e.message.contains("argument 'item'"),
        "{}",
        e.message
    );
    let items = vec![json!("a"), json!("b")];
    let e = run(leaf("std.echo", Slice::Items { offset: 0, items }, SUM))
        .await
        .unwrap_err();
    assert!(
        e.permanent && e.message.starts_with("reduce sum: "),
        "{}",
        e.message
    );
}

/// A file of varied lines (empty ones, long ones, CRLF, no final newline).
fn generated_file() -> (tempfile::NamedTempFile, Vec<String>) {
    let mut content = String::new();
    let mut lines = Vec::new();
    let mut seed = 12345u64;
    for i in 0..400 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let len = (seed >> 33) % 40;
        let line: String = (0..len)
            .map(|j| {
                if (j + i) % 6 == 5 {
                    ' '
                } else {
                    (b'a' + (j % 26) as u8) as char
                }
            })
            .collect();
        let line = format!("{i} {line}");
        content.push_str(&line);
        content.push_str(if i % 13 == 0 { "\r\n" } else { "\n" });
        lines.push(line);
        if i % 17 == 0 {
            content.push('\n');
            lines.push(String::new());
        }
    }
    content.push_str("tail without newline");
    lines.push("tail without newline".into());
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(content.as_bytes()).unwrap();
    (f, lines)
}

async fn collect_lines(path: &str, start: u64, end: u64) -> Vec<Value> {
    let collect = Reducer::Builtin(BuiltinReducer::Collect);
    let slice = Slice::Lines {
        path: path.into(),
        start,
        end,
    };
    let work = Work::MapLeaf {
        function: FnRef::new("std.echo"),
        slice,
        reducer: collect,
    };
    let v = run(work).await.unwrap();
    let items = finish(&v);
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["item"].clone())
        .collect()
}

#[tokio::test]
async fn lines_are_read_exactly_once_over_any_split_points() {
    let (f, expected) = generated_file();
    let path = f.path().to_str().unwrap();
    let len = std::fs::metadata(path).unwrap().len();
    let expected: Vec<Value> = expected.into_iter().map(Value::String).collect();
    assert_eq!(collect_lines(path, 0, len).await, expected);
    // Three-way cuts at many points, including inside CRLFs and at 0 and len.
    let mut seed = 99u64;
    for step in 0..300 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let a = if step < 5 {
            step
        } else {
            (seed >> 20) % (len + 1)
        };
        let b = a + (seed >> 45) % (len + 1 - a);
        let mut got = collect_lines(path, 0, a).await;
        got.extend(collect_lines(path, a, b).await);
        got.extend(collect_lines(path, b, len).await);
        assert_eq!(got, expected, "cuts at {a} and {b}");
    }
}

#[tokio::test]
async fn wordcount_over_lines_merges() {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(b"The cat\nthe DOG, the end.\n").unwrap();
    let merge = Reducer::Builtin(BuiltinReducer::Merge);
    let slice = Slice::Lines {
        path: f.path().to_str().unwrap().into(),
        start: 0,
        end: 26,
    };
    let v = run(leaf("std.wordcount", slice, merge)).await.unwrap();
    assert_eq!(finish(&v), json!({"the": 3, "cat": 1, "dog": 1, "end": 1}));
}

/// The kernel path and the generic path give the same accumulator.
#[tokio::test]
async fn int_kernels_agree_with_the_generic_path() {
    let mut generic = std_registry();
    generic.register_sync("plain.square", |ctx, args| {
        ctx.invoke("std.square", args).resolve_now()
    });
    generic.register_int("fast.third", |i| Ok(crate::Scalar::Float(i as f64 / 3.0)));
    generic.register_sync("plain.third", |ctx, args| {
        ctx.invoke("fast.third", args).resolve_now()
    });
    let ctx = Ctx::detached(Arc::new(generic));
    let reducers = [
        BuiltinReducer::Sum,
        BuiltinReducer::Mean,
        BuiltinReducer::Count,
    ];
    let ranges = [(-1000, 1000), (5, 5), (0, 130), (i64::MAX - 3, i64::MAX)];
    let pairs = [
        ("std.square", "plain.square"),
        ("fast.third", "plain.third"),
    ];
    for reducer in reducers {
        for (start, end) in ranges {
            for (kernel, plain) in pairs {
                let slice = Slice::Range { start, end };
                let fast = leaf(kernel, slice.clone(), Reducer::Builtin(reducer));
                let slow = leaf(plain, slice, Reducer::Builtin(reducer));
                let fast = execute(&ctx, fast).await;
                let slow = execute(&ctx, slow).await;
                assert_eq!(fast, slow, "{kernel} {reducer:?} over {start}..{end}");
            }
        }
    }
}

#[tokio::test]
async fn int_kernel_overflow_is_the_reducers_error() {
    let slice = Slice::Range {
        start: i64::MAX - 50_000,
        end: i64::MAX,
    };
    let e = run(leaf("std.square", slice, SUM)).await.unwrap_err();
    assert!(e.permanent);
    assert!(
        e.message.starts_with("reduce sum: sum overflowed"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn int_functions_take_the_kernel_path_and_check_their_item() {
    let mut r = std_registry();
    r.register_int("test.half", |i| Ok(crate::Scalar::Float(i as f64 / 2.0)));
    let ctx = Ctx::detached(Arc::new(r));
    let slice = Slice::Range { start: 0, end: 5 };
    let v = execute(&ctx, leaf("test.half", slice, SUM)).await.unwrap();
    assert_eq!(finish(&v), json!(5.0));
    let v = execute(
        &ctx,
        leaf(
            "test.half",
            Slice::Items {
                offset: 0,
                items: vec![json!(3)],
            },
            SUM,
        ),
    );
    assert_eq!(finish(&v.await.unwrap()), json!(1.5));
    let items = vec![json!(2.5)];
    let e = execute(
        &ctx,
        leaf("test.half", Slice::Items { offset: 0, items }, SUM),
    )
    .await
    .unwrap_err();
    assert_eq!(
        e.message,
        "argument 'item': expected a 64-bit integer, got 2.5"
    );
}
