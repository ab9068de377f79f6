//! Nothing a manifest can hold breaks the store or the process: each case
//! is refused with `FILE:LINE` (exit 2) in bounded memory, and a store with
//! an unreadable object in it still opens and runs.

mod serve_common;

use serve_common::{KONTINUUM, cli, examples, json};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Address space per child: a regression that expands without bound dies
/// here instead of filling the machine.
const ADDRESS_SPACE: u64 = 3 << 30;
/// Peak resident memory allowed for refusing any of these inputs; the old
/// reader took 5.7 to 9.9 GB on them.
const PEAK_RSS_BYTES: u64 = 300 << 20;

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    peak_rss: u64,
}

/// Runs `kontinuum ARGS...` and measures its peak resident memory with
/// wait4 (exact for that child, unlike RUSAGE_CHILDREN in a test process).
fn measured(args: &[&str], env: &[(&str, &Path)]) -> Outcome {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = Command::new(KONTINUUM);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    // Reaped by wait4 below, which std's wait() cannot replace: it gives
    // no resource usage.
    #[allow(clippy::zombie_processes)]
    let child = cmd.spawn().unwrap();
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    Outcome {
        code,
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: String::from_utf8_lossy(&std::fs::read(err).unwrap()).into_owned(),
        peak_rss: usage.ru_maxrss as u64 * 1024,
    }
}

/// Exit 2, a problem line starting with `FILE:LINE: ` that contains
/// `words`, nothing on stdout, and little memory spent.
fn refused(file: &Path, line: usize, words: &str) -> Outcome {
    let out = measured(&["run", file.to_str().unwrap()], &[]);
    assert_eq!(out.code, Some(2), "{}: {}", file.display(), out.stderr);
    let prefix = format!("{}:{line}: ", file.display());
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with(&prefix) && l.contains(words)),
        "no line {prefix}...{words}... in:\n{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.peak_rss < PEAK_RSS_BYTES,
        "{}: peak RSS {} MB",
        file.display(),
        out.peak_rss >> 20
    );
    out
}

const TASK: &str = "apiVersion: kontinuum.dev/v1alpha1\nkind: Task\nmetadata: {name: t}\nspec:\n";

fn nested(levels: usize) -> String {
    format!("{}1{}", "{a: ".repeat(levels), "}".repeat(levels))
}

#[test]
fn deep_arguments_are_refused_and_the_store_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let (file, data) = (dir.path().join("deep.yaml"), dir.path().join("store"));
    let args = format!(
        "  call: {{function: std.echo, args: {{x: {}}}}}\n",
        nested(125)
    );
    std::fs::write(&file, format!("{TASK}  delay: 1h\n{args}")).unwrap();
    let out = measured(
        &[
            "run",
            file.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let expected = format!(
        "{}:6: spec.call.args: {}",
        file.display(),
        kontinuum_api::limits::too_deep()
    );
    assert!(out.stderr.lines().any(|l| l == expected), "{}", out.stderr);
    let sum = examples().join("sum.yaml");
    let out = measured(
        &[
            "run",
            sum.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
}

/// A root record planted in the store that no version could decode: the
/// store opens, other jobs run, serve starts and shows the object Failed.
#[test]
fn a_store_with_an_undecodable_object_opens_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("store");
    let sum = examples().join("sum.yaml");
    let run = |file: &Path| {
        measured(
            &[
                "run",
                file.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
            ],
            &[],
        )
    };
    assert_eq!(run(&sum).code, Some(0));
    {
        // docs/architecture.md: `o` + NAMESPACE/KIND/NAME, then a state
        // byte (1: active).
        let db = sled::open(&data).unwrap();
        db.insert(b"odefault/task/evil", &b"\x01{\"root\": [[[[ not json"[..])
            .unwrap();
        db.flush().unwrap();
    }
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        format!("{TASK}  call: {{function: std.sum, args: {{a: 1, b: 2}}}}\n"),
    )
    .unwrap();
    let out = run(&other);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out.stdout.contains("Succeeded"), "{}", out.stdout);

    let server = serve_common::start(dir, None);
    let got = cli(&server, &["get", "task", "evil", "-o", "json"]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    let object = json(&got.stdout);
    assert_eq!(object["status"]["phase"], "Failed", "{object}");
    let message = object["status"]["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot read this object's root record"),
        "{message}"
    );
    let got = cli(&server, &["get", "tasks"]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert!(got.stdout.contains("task/t"), "{}", got.stdout);
}

#[test]
fn alias_bombs_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // Nine levels of nine: 387 million values from ten lines.
    let mut laughs = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let bomb = dir.path().join("bomb.yaml");
    std::fs::write(&bomb, &laughs).unwrap();
    refused(&bomb, 7, "the document holds more than 1000000 values");
    // The same inside a task's arguments.
    let indented: String = laughs.lines().map(|l| format!("      {l}\n")).collect();
    let in_args = dir.path().join("args.yaml");
    std::fs::write(
        &in_args,
        format!("{TASK}  call:\n    function: std.echo\n    args:\n{indented}"),
    )
    .unwrap();
    refused(&in_args, 14, "the document holds more than 1000000 values");
    // A 10,000-line chain, each alias doubling the one before.
    let mut chain = String::from("c0: &c0 [x, y]\n");
    for i in 1..10_000 {
        chain.push_str(&format!("c{i}: &c{i} [*c{}, *c{}]\n", i - 1, i - 1));
    }
    let chained = dir.path().join("chain.yaml");
    std::fs::write(&chained, chain).unwrap();
    refused(&chained, 18, "the document holds more than 1000000 values");
}

#[test]
fn huge_inputs_are_refused_in_bounded_memory() {
    let out = measured(&["run", "/dev/zero"], &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("/dev/zero: the file is larger than 8 MiB"),
        "{}",
        out.stderr
    );
    assert!(
        out.peak_rss < PEAK_RSS_BYTES,
        "peak RSS {} MB",
        out.peak_rss >> 20
    );

    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.yaml");
    std::fs::write(&big, "#".repeat(9 << 20)).unwrap();
    let out = measured(&["run", big.to_str().unwrap()], &[]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr.contains("the file is larger than 8 MiB"),
        "{}",
        out.stderr
    );

    // Under 8 MiB, but more values than a document may hold.
    let many = dir.path().join("many.yaml");
    std::fs::write(
        &many,
        format!("items: [{}]\n", vec!["0"; 3_000_000].join(",")),
    )
    .unwrap();
    refused(&many, 1, "the document holds more than 1000000 values");
}

#[test]
fn nul_and_control_characters_are_refused_at_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let sum = format!("{TASK}  call: {{function: std.sum, args: {{a: 1, b: 2}}}}\n");
    let two = dir.path().join("two.yaml");
    std::fs::write(
        &two,
        format!("{sum}---\n\0\n{}", sum.replace("name: t", "name: u")),
    )
    .unwrap();
    refused(&two, 7, "U+0000 is not allowed in YAML");
    let name = dir.path().join("name.yaml");
    std::fs::write(&name, format!("{TASK}  call:\n    function: std.su\0m\n")).unwrap();
    refused(&name, 6, "U+0000");
    let bell = dir.path().join("bell.yaml");
    std::fs::write(
        &bell,
        format!("{TASK}  call: {{function: std.echo, args: {{x: \"a\x07b\"}}}}\n"),
    )
    .unwrap();
    refused(&bell, 5, "U+0007");
    let latin1 = dir.path().join("latin1.yaml");
    std::fs::write(&latin1, b"a: 1\nb: caf\xe9\n").unwrap();
    refused(&latin1, 2, "not UTF-8");
}

#[test]
fn numbers_beyond_a_double_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.yaml");
    std::fs::write(
        &file,
        format!("{TASK}  call: {{function: std.echo, args: {{x: 1e400, y: .inf}}}}\n"),
    )
    .unwrap();
    let out = refused(&file, 5, "spec.call.args.x: 1e400 is not a finite number");
    assert!(
        out.stderr
            .contains("spec.call.args.y: .inf is not a finite number"),
        "{}",
        out.stderr
    );
}

#[test]
fn timeouts_of_zero_are_refused_in_one_wording() {
    let dir = tempfile::tempdir().unwrap();
    for text in ["0s", "0.0000001s"] {
        let file = dir.path().join("t.yaml");
        std::fs::write(
            &file,
            format!(
                "{TASK}  timeout: {text}\n  call: {{function: std.sum, args: {{a: 1, b: 2}}}}\n"
            ),
        )
        .unwrap();
        refused(
            &file,
            5,
            &format!("spec.timeout: must be at least 1ms (found '{text}')"),
        );
    }
}

#[test]
fn data_naming_a_file_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let sum = examples().join("sum.yaml");
    let out = measured(
        &[
            "run",
            sum.to_str().unwrap(),
            "--data",
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("is a file, not a directory: name a directory for the store"),
        "{}",
        out.stderr
    );
}

/// SIGTERM as Ctrl-C: the temporary store is removed and the same message
/// printed (exit 143, the shell's code for SIGTERM).
#[test]
fn sigterm_cleans_up_the_temporary_store() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let file = dir.path().join("sleep.yaml");
    std::fs::write(
        &file,
        format!("{TASK}  call: {{function: std.sleep, args: {{ms: 60000}}}}\n"),
    )
    .unwrap();
    let err = dir.path().join("err");
    let mut child = Command::new(KONTINUUM)
        .args(["run", file.to_str().unwrap()])
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let stores = || std::fs::read_dir(&tmp).unwrap().count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while stores() == 0 {
        assert!(Instant::now() < deadline, "no temporary store appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Whenever it comes once the store exists (while the engine opens, the
    // task is submitted, or it sleeps), SIGTERM must clean up.
    std::thread::sleep(Duration::from_millis(50));
    let killed = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -TERM {}", child.id()))
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.contains("interrupted: workers stopped; the temporary store is removed"),
        "{stderr}"
    );
    assert_eq!(
        stores(),
        0,
        "left behind: {:?}",
        std::fs::read_dir(&tmp).unwrap().collect::<Vec<_>>()
    );
}
