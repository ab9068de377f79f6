//! Reading a continuation in a cluster, with the command the docs show: a
//! ServiceAccount token of the job's namespace (audience `kontinuum.dev`)
//! piped into `kontinuum get --token-file /dev/stdin`. Without a token the
//! worker API refuses with 401, which is what a user met before the docs
//! said how.

use kontinuum_e2e::procs::{Operator, OperatorOptions, bin};
use kontinuum_e2e::{TestNamespace, client, ensure_crds, kubectl, repo_root};
use std::process::Command;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_reads_with_a_namespace_token() {
    ensure_crds().await;
    let c = client().await;
    let ns = TestNamespace::create(&c, "cont").await;
    let n = ns.name();
    let dir = tempfile::tempdir().unwrap();
    let mut operator = Operator::start(dir.path(), "a", &OperatorOptions::watching(dir.path(), n));
    operator.wait_ready(Duration::from_secs(60));
    let _worker = operator.worker(dir.path(), "1", &[]);
    let example = repo_root().join("examples/sum.yaml");
    kubectl(&["apply", "-n", n, "-f", example.to_str().unwrap()]);
    let start = Instant::now();
    loop {
        let name = kubectl(&[
            "get",
            "-n",
            n,
            "task",
            "sum-4-5",
            "-o",
            "jsonpath={.status.continuation}",
        ]);
        if name == "sum-4-5.on-success" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no continuation yet"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let get = format!(
        "{} get task/sum-4-5.on-success -n {n} --server {}",
        bin("kontinuum").display(),
        operator.api
    );
    // No token: refused, as the user saw.
    let bare = Command::new("sh").args(["-c", &get]).output().unwrap();
    assert!(!bare.status.success());
    let said = String::from_utf8_lossy(&bare.stderr);
    assert!(said.contains("401") || said.contains("token"), "{said}");
    // The documented way: a token of the job's namespace, on stdin.
    let documented = format!(
        "kubectl -n {n} create token default --audience kontinuum.dev | {get} --token-file /dev/stdin"
    );
    let start = Instant::now();
    let out = loop {
        let out = Command::new("sh")
            .args(["-c", &documented])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() && text.contains("Succeeded") {
            break text;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{documented}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(out.contains("sum-4-5.on-success"), "{out}");
}
