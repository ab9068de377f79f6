//! Every seed example through the real engine, with this crate's functions
//! served by in-process workers.

use kontinuum_api::{FnRef, ObjectId, Phase, TaskSpec, TaskStatus};
use kontinuum_engine::{Engine, EngineConfig, ObjectStatus, Submission};
use kontinuum_seed_worker::{
    ApplyArgs, GenerateArgs, Journal, NoArgs, Person, Seed, Sum, SumThen, generate_success_handler,
    register,
};
use kontinuum_worker::{InProcessWorkers, start_in_process, std_registry};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Setup {
    engine: Engine,
    workers: InProcessWorkers,
    seed: Seed,
    journal: Journal,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        lease: Duration::from_millis(900),
        ..Default::default()
    };
    let engine = Engine::open(dir.path(), config).unwrap();
    let journal = Journal::default();
    let mut registry = std_registry();
    let seed = register(&mut registry, &journal);
    let workers = start_in_process(engine.clone(), Arc::new(registry), "*", 4);
    Setup {
        engine,
        workers,
        seed,
        journal,
        _dir: dir,
    }
}

/// A Task of `call`, with the rest of its spec (onSuccess, debounce, ...) from YAML.
fn task(name: &str, call: &FnRef, rest: &str) -> Submission {
    let mut spec: Value = serde_yaml::from_str(rest).unwrap();
    spec["call"] = serde_json::to_value(call).unwrap();
    let spec: TaskSpec = serde_json::from_value(spec).unwrap();
    Submission::task("default", name, spec)
}

async fn wait_tasks(engine: &Engine, names: &[&str]) -> Vec<TaskStatus> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let s: Vec<ObjectStatus> = names
            .iter()
            .map(|n| engine.status(&ObjectId::task("default", *n)).unwrap())
            .collect();
        if s.iter().all(ObjectStatus::is_final) {
            return s
                .into_iter()
                .map(|s| match s {
                    ObjectStatus::Task(t) => t,
                    other => panic!("not a task: {other:?}"),
                })
                .collect();
        }
        assert!(Instant::now() < until, "not final in time: {s:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `who` has logged something (continuations run as new tasks
/// after the first one is final, so they finish a little later).
async fn wait_logged(journal: &Journal, who: &str) -> Vec<Value> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let logged = journal.logged(who);
        if !logged.is_empty() {
            return logged;
        }
        assert!(Instant::now() < until, "{who} never logged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_sum_runs_its_on_success_continuation_with_the_result() {
    let s = setup();
    let call = s.seed.do_sum.call(&Sum { a: 4, b: 5 }).unwrap();
    let rest = format!("{{onSuccess: {}}}", json!(s.seed.success_handler.fnref()));
    s.engine.submit(vec![task("sum", &call, &rest)]).unwrap();
    let st = wait_tasks(&s.engine, &["sum"]).await;
    assert_eq!(st[0].result, Some(json!(9)));
    assert_eq!(
        wait_logged(&s.journal, "seed.success_handler").await,
        [json!(9)]
    );
    s.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_success_handler_closes_over_c() {
    let s = setup();
    let handler = generate_success_handler(&s.seed, 7).unwrap();
    assert_eq!(handler.args["c"], json!(7), "c travels as a bound argument");
    let call = s.seed.do_sum.call(&Sum { a: 4, b: 5 }).unwrap();
    let rest = format!("{{onSuccess: {}}}", json!(handler));
    s.engine.submit(vec![task("sum", &call, &rest)]).unwrap();
    wait_tasks(&s.engine, &["sum"]).await;
    assert_eq!(wait_logged(&s.journal, "seed.add_c").await, [json!(16)]);
    s.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn continuation_passing_runs_the_handler_in_the_same_task() {
    let s = setup();
    let on_success = generate_success_handler(&s.seed, 7).unwrap();
    let call = s
        .seed
        .do_sum_cps
        .call(&SumThen {
            a: 4,
            b: 5,
            on_success,
        })
        .unwrap();
    s.engine.submit(vec![task("cps", &call, "{}")]).unwrap();
    let st = wait_tasks(&s.engine, &["cps"]).await;
    assert_eq!(st[0].result, Some(json!(16)), "{:?}", st[0].error);
    assert_eq!(s.journal.logged("seed.add_c"), [json!(16)]);
    s.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_function_to_args_calls_its_function_argument() {
    let s = setup();
    let args = ApplyArgs {
        f: s.seed.add.fnref(),
        a: 4,
        b: 5,
        handle_result: Some(s.seed.handle_result.fnref()),
    };
    let call = s.seed.apply_function_to_args.call(&args).unwrap();
    assert_eq!(
        call.args["f"],
        json!({"$fn": {"function": "seed.add", "args": {}}})
    );
    // A wrong argument type fails permanently, naming the field.
    let bad = s
        .seed
        .apply_function_to_args
        .fnref()
        .arg("f", s.seed.add.fnref().to_value())
        .arg("a", "four")
        .arg("b", 5);
    s.engine
        .submit(vec![task("apply", &call, "{}"), task("bad", &bad, "{}")])
        .unwrap();
    let st = wait_tasks(&s.engine, &["apply", "bad"]).await;
    assert_eq!(st[0].result, Some(json!(9)));
    assert_eq!(
        s.journal.logged("seed.handle_result"),
        [json!(9)],
        "HandleResult ran inline"
    );
    let err = st[1].error.clone().unwrap();
    assert!(
        err.message.starts_with("argument 'a': invalid type"),
        "{}",
        err.message
    );
    assert_eq!(st[1].attempts, 1, "permanent: not retried");
    s.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_apply_func_hands_a_function_to_its_continuation() {
    let s = setup();
    let args = GenerateArgs {
        f: s.seed.add.fnref(),
        a: 4,
        b: 5,
        handler: s.seed.handle_apply.fnref(),
    };
    let call = s.seed.generate_apply_func.call(&args).unwrap();
    s.engine.submit(vec![task("gen", &call, "{}")]).unwrap();
    let st = wait_tasks(&s.engine, &["gen"]).await;
    assert_eq!(st[0].phase, Some(Phase::Succeeded), "{:?}", st[0].error);
    // The handler ran as its own task (spawned) and called ApplyF inline.
    assert_eq!(
        wait_logged(&s.journal, "seed.handle_apply").await,
        [json!(9)]
    );
    s.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_function_in_a_variable_is_called_like_any_value() {
    let s = setup();
    let x = s.seed.does_something.clone();
    let y = s.seed.nine.clone();
    let calls = [x.call(&NoArgs {}).unwrap(), y.call(&NoArgs {}).unwrap()];
    s.engine
        .submit(vec![task("x", &calls[0], "{}"), task("y", &calls[1], "{}")])
        .unwrap();
    let st = wait_tasks(&s.engine, &["x", "y"]).await;
    assert_eq!(st[0].result, Some(json!("did something")));
    assert_eq!(st[1].result, Some(json!(9)));
    assert_eq!(s.journal.logged("seed.does_something"), [json!("stuff")]);
    s.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_are_equal_by_stable_id() {
    let s = setup();
    let typed = s
        .seed
        .update_person
        .call(&Person {
            person_id: "1234".into(),
        })
        .unwrap();
    let by_hand = FnRef::new("seed.update_person").arg("personId", "1234");
    assert_eq!(typed.stable_id(), by_hand.stable_id());
    // The published vector (docs/reference.md) for the same call under its
    // documented name.
    let design = FnRef::new("people.update").arg("personId", "1234");
    assert_eq!(
        design.stable_id(),
        "sha256:fc3c27dd17c1fa1b923264c9ab47db1619c06330e55d668611648d48f8dd94c3"
    );
    let other = s
        .seed
        .update_person
        .call(&Person {
            person_id: "5432".into(),
        })
        .unwrap();
    assert_ne!(typed.stable_id(), other.stable_id());
    // Closures: same captures, same id; a different capture differs.
    let h7 = generate_success_handler(&s.seed, 7).unwrap();
    assert_eq!(
        h7.stable_id(),
        generate_success_handler(&s.seed, 7).unwrap().stable_id()
    );
    assert_ne!(
        h7.stable_id(),
        generate_success_handler(&s.seed, 8).unwrap().stable_id()
    );
    s.workers.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debounced_update_person_runs_once_per_person() {
    let s = setup();
    let person = |id: &str| {
        s.seed
            .update_person
            .call(&Person {
                person_id: id.into(),
            })
            .unwrap()
    };
    let debounce = "{debounce: {initial: 300ms, repeat: 300ms}}";
    s.engine
        .submit(vec![
            task("u1234-a", &person("1234"), debounce),
            task("u1234-b", &person("1234"), debounce),
            task("u5432", &person("5432"), debounce),
        ])
        .unwrap();
    let st = wait_tasks(&s.engine, &["u1234-a", "u1234-b", "u5432"]).await;
    let phases: Vec<_> = st
        .iter()
        .map(|t| t.phase.unwrap_or(Phase::Pending))
        .collect();
    assert_eq!(
        phases.iter().filter(|p| **p == Phase::Merged).count(),
        1,
        "{phases:?}"
    );
    // Nothing else is scheduled: give a stray run time to show up anyway.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expected: HashMap<String, u32> = [("1234".to_string(), 1), ("5432".to_string(), 1)].into();
    assert_eq!(s.journal.updates(), expected);
    s.workers.shutdown().await;
}
