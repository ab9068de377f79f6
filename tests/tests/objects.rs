//! Map sources in object storage, against the test cluster's S3-compatible
//! store (s3s-fs, started by tests/cluster/up.sh), through `kontinuum run`:
//! the workers list and read the objects with the credentials of their
//! environment; the engine only keeps the listing.

use kontinuum_e2e::procs::bin;
use kontinuum_e2e::s3;
use serde_json::{Value, json};
use std::io::Write;
use std::process::Command;
use std::time::Duration;

/// `kontinuum run -o json` of `manifest` with `env`: exit code and the
/// objects by name.
fn run(manifest: &str, env: &[(&str, String)], clear_aws: bool) -> (Option<i32>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("job.yaml");
    std::fs::write(&file, manifest).unwrap();
    let mut cmd = Command::new(bin("kontinuum"));
    cmd.args(["run", "-o", "json"]).arg(&file);
    if clear_aws {
        for (k, _) in std::env::vars() {
            if k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let out = cmd.output().expect("run kontinuum");
    let value: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "no JSON from kontinuum run: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let objects = match value["items"].as_array() {
        Some(items) => items.clone(),
        None => vec![value],
    };
    (out.status.code(), objects)
}

fn words_future(name: &str, url: &str, extra: &str) -> String {
    format!(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {{name: {name}}}\nspec:\n  \
         map:\n    source: {{objects: {{url: '{url}', endpoint: '{}'{extra}}}}}\n    \
         function: {{function: std.wordcount}}\n    shardSize: 20000\n    reduce: merge\n---\n",
        s3::endpoint()
    )
}

fn failed_message(object: &Value) -> String {
    assert_eq!(object["status"]["phase"], "Failed", "{object}");
    object["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Failed"))
        .and_then(|c| c["message"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn word_count_over_objects_equals_the_count_over_the_same_text_on_disk() {
    let bucket = "corpus-equal";
    let store = s3::bucket(bucket);
    let local = tempfile::tempdir().unwrap();
    let mut all = std::fs::File::create(local.path().join("all.txt")).unwrap();
    let total_words = s3::put_corpus(&store, "corpus/", |data| all.write_all(data).unwrap()).await;
    // Outside the prefix: not read.
    s3::put(&store, "other/x.txt", b"zebra\n".to_vec()).await;
    drop(all);

    let from_disk = format!(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {{name: disk}}\nspec:\n  \
         map:\n    source: {{lines: {{path: '{}'}}}}\n    function: {{function: std.wordcount}}\n    \
         shardSize: 20000\n    reduce: merge\n",
        local.path().join("all.txt").display()
    );
    let manifest = words_future("objects", &format!("s3://{bucket}/corpus/"), "") + &from_disk;
    let started = std::time::Instant::now();
    let (code, objects) = run(&manifest, &s3::credentials(), true);
    let took = started.elapsed();
    assert_eq!(code, Some(0), "{objects:#?}");
    let (s3_counts, disk_counts) = (
        &objects[0]["status"]["result"],
        &objects[1]["status"]["result"],
    );
    assert_eq!(s3_counts, disk_counts);
    let sum: u64 = s3_counts
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(sum, total_words, "every word once");
    assert!(
        s3_counts.get("zebra").is_none(),
        "nothing outside the prefix"
    );
    assert_eq!(s3_counts["sphinx"], disk_counts["sphinx"]);
    let progress = &objects[0]["status"]["progress"];
    assert_eq!(progress["done"], progress["total"], "{progress}");
    eprintln!("both maps in {took:?}");
    assert!(took < Duration::from_secs(600));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_or_key_or_credentials_fail_their_future_naming_it_and_nothing_else() {
    let bucket = "corpus-faults";
    let store = s3::bucket(bucket);
    s3::put(&store, "texts/a.txt", b"one two\nthree\n".to_vec()).await;
    let fine = "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: fine}\nspec:\n  \
                call: {function: std.sum, args: {a: 1, b: 2}}\n";

    // A missing bucket and a missing key, beside a good map and a Task.
    let manifest = words_future("no-bucket", "s3://no-such-bucket/texts/", "")
        + &words_future("no-key", &format!("s3://{bucket}/texts/b.txt"), "")
        + &words_future("good", &format!("s3://{bucket}/texts/a.txt"), "")
        + fine;
    let (code, objects) = run(&manifest, &s3::credentials(), true);
    assert_eq!(code, Some(1));
    let m = failed_message(&objects[0]);
    assert!(
        m.starts_with("spec.map.source.objects.url: s3://no-such-bucket/texts/: "),
        "{m}"
    );
    let m = failed_message(&objects[1]);
    assert!(
        m.contains(&format!("s3://{bucket}/texts/b.txt: no such object")),
        "{m}"
    );
    assert_eq!(
        objects[2]["status"]["result"],
        json!({"one": 1, "two": 1, "three": 1})
    );
    assert_eq!(objects[3]["status"]["result"], 3);

    // The wrong secret: refused, named, retried no more.
    let mut wrong = s3::credentials();
    wrong[1].1 = "not-the-secret".into();
    let (_, objects) = run(
        &words_future("wrong-key", &format!("s3://{bucket}/texts/"), ""),
        &wrong,
        true,
    );
    let m = failed_message(&objects[0]);
    assert!(m.contains("refused the workers' credentials"), "{m}");

    // No credentials at all: said at once.
    let (_, objects) = run(
        &words_future("no-key", &format!("s3://{bucket}/texts/"), ""),
        &[],
        true,
    );
    let m = failed_message(&objects[0]);
    assert!(m.contains("the worker has no credentials"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_deleted_during_the_map_fails_it_naming_the_object() {
    let bucket = "corpus-deleted";
    let store = s3::bucket(bucket);
    let (a, _) = s3::text(1, 20);
    let (b, _) = s3::text(2, 20);
    s3::put(&store, "slow/a.txt", a).await;
    s3::put(&store, "slow/b.txt", b).await;
    let manifest = format!(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {{name: slow}}\nspec:\n  \
         map:\n    source: {{objects: {{url: 's3://{bucket}/slow/', endpoint: '{}'}}}}\n    \
         function: {{function: std.sleep, args: {{ms: 100}}}}\n    shardSize: 1\n    reduce: count\n",
        s3::endpoint()
    );
    let creds = s3::credentials();
    let runner = tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("job.yaml");
        std::fs::write(&file, manifest).unwrap();
        let out = Command::new(bin("kontinuum"))
            .args(["run", "--workers", "1", "-o", "json"])
            .arg(&file)
            .envs(creds.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap_or(Value::Null)
    });
    // 40 lines at 100 ms each, one at a time: b's lines are read after a's.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    s3::delete(&store, "slow/b.txt").await;
    let object = runner.await.unwrap();
    let m = failed_message(&object);
    assert!(m.contains(&format!("s3://{bucket}/slow/b.txt")), "{m}");
}

/// `kontinuum get future/NAME -o json` from a server.
fn get_future(url: &str, token: &std::path::Path, name: &str) -> Value {
    let out = Command::new(bin("kontinuum"))
        .args([
            "get",
            "future",
            name,
            "-o",
            "json",
            "--server",
            url,
            "--token-file",
        ])
        .arg(token)
        .output()
        .expect("kontinuum get");
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_while_it_reads_ranges_costs_a_rerun_not_a_count() {
    use kontinuum_e2e::procs::{Proc, free_port};
    let bucket = "corpus-kill";
    let store = s3::bucket(bucket);
    let (data, words) = s3::text(9, 400_000);
    s3::put(&store, "big.txt", data).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "kill-test-token\n").unwrap();
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut serve = Command::new(bin("kontinuum"));
    serve
        .args([
            "serve",
            "--listen",
            url.trim_start_matches("http://"),
            "--data",
        ])
        .arg(dir.path().join("store"))
        .arg("--token-file")
        .arg(&token);
    let _server = Proc::spawn("serve", serve, dir.path().join("serve.log"));
    let manifest = dir.path().join("job.yaml");
    std::fs::write(
        &manifest,
        format!(
            "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {{name: big}}\nspec:\n  \
             map:\n    source: {{objects: {{url: 's3://{bucket}/big.txt', endpoint: '{}'}}}}\n    \
             function: {{function: std.wordcount}}\n    shardSize: 10000\n    reduce: merge\n",
            s3::endpoint()
        ),
    )
    .unwrap();
    kontinuum_e2e::wait_for("the server", Duration::from_secs(30), || async {
        let out = Command::new(bin("kontinuum"))
            .args(["submit", "--server", &url, "--token-file"])
            .arg(&token)
            .arg(&manifest)
            .output()
            .ok()?;
        out.status.success().then_some(())
    })
    .await;
    // One lease at a time: a kill lands in the middle of a leaf.
    let worker = |label: &str| {
        let mut cmd = Command::new(bin("kontinuum-worker"));
        cmd.args(["--server", &url, "--pool", "default", "--concurrency", "1"])
            .arg("--token-file")
            .arg(&token)
            .envs(s3::credentials());
        Proc::spawn(label, cmd, dir.path().join(format!("{label}.log")))
    };
    let mut doomed = worker("doomed");
    let before = kontinuum_e2e::wait_for("the map under way", Duration::from_secs(120), || async {
        let p = &get_future(&url, &token, "big")["status"]["progress"];
        let (done, total) = (p["done"].as_u64()?, p["total"].as_u64()?);
        (done > 0 && done < total / 2).then_some(done)
    })
    .await;
    doomed.kill9();
    let _rescuer = worker("rescuer");
    let end = kontinuum_e2e::wait_for("the map to finish", Duration::from_secs(300), || async {
        let f = get_future(&url, &token, "big");
        matches!(f["status"]["phase"].as_str(), Some("Succeeded" | "Failed")).then_some(f)
    })
    .await;
    assert_eq!(end["status"]["phase"], "Succeeded", "{end}");
    let sum: u64 = end["status"]["result"]
        .as_object()
        .unwrap()
        .values()
        .filter_map(Value::as_u64)
        .sum();
    assert_eq!(
        sum, words,
        "every word once, although a worker died mid-leaf (killed at {before} bytes)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_result_too_big_for_a_status_is_written_to_an_object() {
    use object_store::ObjectStoreExt;
    let bucket = "results";
    let store = s3::bucket(bucket);
    // 100,000 distinct words, each twice: a merge with 100,000 keys.
    let text: String = (0..200_000)
        .map(|i| format!("w{:06}\n", i % 100_000))
        .collect();
    s3::put(&store, "in/words.txt", text.into_bytes()).await;
    let manifest = format!(
        "apiVersion: kontinuum.dev/v1alpha1\nkind: HierarchicalFuture\nmetadata: {{name: vocabulary}}\nspec:\n  \
         map:\n    source: {{objects: {{url: 's3://{bucket}/in/words.txt', endpoint: '{e}'}}}}\n    \
         function: {{function: std.wordcount}}\n    shardSize: 20000\n    reduce: merge\n  \
         output: {{url: 's3://{bucket}/runs/vocabulary.json', endpoint: '{e}'}}\n",
        e = s3::endpoint()
    );
    let (code, objects) = run(&manifest, &s3::credentials(), true);
    assert_eq!(code, Some(0), "{objects:#?}");
    let reference = &objects[0]["status"]["result"];
    assert_eq!(
        reference["url"],
        format!("s3://{bucket}/runs/vocabulary.json")
    );
    let written = store
        .get(&object_store::path::Path::from("runs/vocabulary.json"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(reference["bytes"], written.len(), "{reference}");
    assert!(
        written.len() > 1 << 20,
        "{} bytes: far more than a status holds",
        written.len()
    );
    let counts: serde_json::Map<String, Value> = serde_json::from_slice(&written).unwrap();
    assert_eq!(counts.len(), 100_000);
    assert!(counts.values().all(|v| v == 2));
    assert_eq!(reference["sha256"].as_str().map(str::len), Some(64));
}
