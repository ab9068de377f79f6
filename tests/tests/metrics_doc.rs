//! docs/metrics.md against what real processes serve: `kontinuum serve`
//! (the engine's and the worker API's tables) and `kontinuum-worker` (the
//! worker's), scraped after a job with successes, a retry and a failure ran.
//! The operator's whole set is compared on a real cluster by
//! tests/tests/dashboard_live.rs. No cluster needed here.

use kontinuum_e2e::metrics::{Documented, Served, disagreements, documented, served, value};
use kontinuum_e2e::procs::{Proc, bin, free_port, http_get};
use kontinuum_e2e::repo_root;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

fn docs() -> BTreeMap<String, Documented> {
    let path = repo_root().join("docs/metrics.md");
    documented(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
}

fn scrape(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some((200, body)) = http_get(url) {
            return body;
        }
        assert!(Instant::now() < deadline, "{url} did not answer");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn serve_and_worker_serve_exactly_their_documented_series() {
    let dir = tempfile::tempdir().unwrap();
    let (api, metrics, worker_metrics) = (free_port(), free_port(), free_port());
    let mut serve = Command::new(bin("kontinuum"));
    serve
        .args(["serve", "--listen", &format!("127.0.0.1:{api}")])
        .args(["--metrics-listen", &format!("127.0.0.1:{metrics}")])
        .arg("--data")
        .arg(dir.path().join("store"));
    let _serve = Proc::spawn("kontinuum serve", serve, dir.path().join("serve.log"));
    let server = format!("http://127.0.0.1:{api}");
    scrape(&format!("http://127.0.0.1:{metrics}/healthz"));
    let mut worker = Command::new(bin("kontinuum-worker"));
    worker
        .args([
            "--server",
            &server,
            "--pool",
            "default",
            "--concurrency",
            "4",
        ])
        .args(["--metrics-listen", &format!("127.0.0.1:{worker_metrics}")]);
    let _worker = Proc::spawn("worker", worker, dir.path().join("worker.log"));

    let job = dir.path().join("job.yaml");
    std::fs::write(
        &job,
        "apiVersion: kontinuum.dev/v1alpha1
kind: Task
metadata: {name: ok}
spec: {call: {function: std.echo, args: {x: 1}}}
---
apiVersion: kontinuum.dev/v1alpha1
kind: Task
metadata: {name: flaky}
spec:
  call: {function: std.fail, args: {message: again}}
  retry: {maxAttempts: 2, backoff: {initial: 10ms}}
---
apiVersion: kontinuum.dev/v1alpha1
kind: HierarchicalFuture
metadata: {name: squares}
spec:
  map:
    source: {range: {start: 0, end: 100}}
    function: {function: std.square}
    shardSize: 10
    reduce: sum
",
    )
    .unwrap();
    let out = Command::new(bin("kontinuum"))
        .args(["submit", "--wait", "--server", &server])
        .arg(&job)
        .output()
        .unwrap();
    // The failing task makes submit --wait exit non-zero; what matters is
    // that every object is final.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Failed") && stdout.contains("Succeeded"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let docs = docs();
    let text = scrape(&format!("http://127.0.0.1:{metrics}/metrics"));
    let problems = disagreements(&docs, &served(&text), |d| {
        matches!(d.section.as_str(), "Work" | "Worker API")
    });
    assert!(problems.is_empty(), "{}\n---\n{text}", problems.join("\n"));
    let flaky = [("function", "std.fail"), ("outcome", "retried")];
    assert_eq!(
        value(&text, "kontinuum_tasks_completed_total", &flaky),
        Some(1.0)
    );
    let failed = [("function", "std.fail"), ("outcome", "failed")];
    assert_eq!(
        value(&text, "kontinuum_tasks_completed_total", &failed),
        Some(1.0)
    );

    let text = scrape(&format!("http://127.0.0.1:{worker_metrics}/metrics"));
    let problems = disagreements(&docs, &served(&text), |d| d.section == "Worker");
    assert!(problems.is_empty(), "{}\n---\n{text}", problems.join("\n"));
}

#[test]
fn each_disagreement_is_found() {
    let docs = documented(
        "## Work\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n\
         | `kontinuum_a_total` | counter | namespace, pool | a |\n\
         | `kontinuum_b_seconds` | histogram | | b |\n\
         ## Worker\n\n| `kontinuum_c` | gauge | pool | c |\n",
    );
    assert_eq!(docs["kontinuum_c"].section, "Worker");
    assert!(docs["kontinuum_b_seconds"].labels.is_empty());
    let text = "# TYPE kontinuum_a_total counter\n\
                kontinuum_a_total{namespace=\"x\",route=\"/v1/{a},{b}\"} 1\n\
                # TYPE kontinuum_b_seconds histogram\n\
                kontinuum_b_seconds_bucket{le=\"0.1\"} 0\n\
                kontinuum_b_seconds_sum 0\n\
                kontinuum_b_seconds_count 0\n\
                # TYPE kontinuum_d gauge\n\
                kontinuum_d 1\n";
    let scrape: BTreeMap<String, Served> = served(text);
    assert_eq!(scrape["kontinuum_b_seconds"].samples, 3);
    assert!(
        scrape["kontinuum_b_seconds"].labels.is_empty(),
        "le is not a label of its own"
    );
    let problems = disagreements(&docs, &scrape, |d| d.section == "Worker");
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(
        problems[0].contains("kontinuum_a_total has labels"),
        "{problems:?}"
    );
    assert!(
        problems[1].contains("kontinuum_d is served but not in"),
        "{problems:?}"
    );
    assert!(problems[2].contains("kontinuum_c (Worker) is in docs/metrics.md but was not served"));
    // Another type is caught too.
    let wrong = served("# TYPE kontinuum_c counter\nkontinuum_c{pool=\"p\"} 1\n");
    let problems = disagreements(&docs, &wrong, |_| false);
    assert_eq!(
        problems,
        ["kontinuum_c is a counter but docs/metrics.md says gauge"]
    );
}
