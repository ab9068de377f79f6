//! The container image, built without a daemon by scripts/build-image: a
//! valid OCI archive (checked by our reader and by crane's), holding exactly
//! the planned root filesystem, whose static binaries run as uid 65532
//! inside it with nothing else to lean on.
//!
//! scripts/test builds the archive once and passes it in
//! KONTINUUM_IMAGE_ARCHIVE; without it the test runs scripts/build-image
//! (cached by source hash: cheap when nothing changed).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use kontinuum_e2e::{image_archive, repo_root};
use kontinuum_image::{elf, verify};

fn archive() -> &'static PathBuf {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(image_archive)
}

fn image() -> verify::Image {
    let bytes = std::fs::read(archive())
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", archive().display()));
    verify::read(&bytes).unwrap_or_else(|e| panic!("{}: {e}", archive().display()))
}

fn workspace_version() -> String {
    let text = std::fs::read_to_string(repo_root().join("Cargo.toml")).expect("Cargo.toml");
    let line = text
        .lines()
        .skip_while(|l| l.trim() != "[workspace.package]")
        .find(|l| l.starts_with("version = "))
        .expect("workspace version");
    line["version = ".len()..].trim_matches('"').to_owned()
}

#[test]
fn the_archive_is_a_valid_oci_image_named_for_the_version() {
    let image = image();
    assert_eq!(
        image.name,
        format!("kontinuum.dev/kontinuum:{}", workspace_version())
    );
    let config = &image.config["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Cmd"][0], "/usr/local/bin/kontinuum-operator");
    assert_eq!(image.config["os"], "linux");
    assert_eq!(image.config["architecture"], "amd64");
}

#[test]
fn crane_reads_the_archive_as_a_valid_image() {
    let versions = std::fs::read_to_string(repo_root().join("tests/cluster/versions.env"))
        .expect("versions.env");
    let version = versions
        .lines()
        .find_map(|l| l.strip_prefix("CRANE_VERSION="))
        .expect("CRANE_VERSION in versions.env");
    let cache = std::env::var_os("KONTINUUM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/kontinuum")
        });
    let crane = cache.join("crane").join(version).join("bin/crane");
    assert!(
        crane.exists(),
        "{} is missing: run tests/cluster/build.sh crane (scripts/test does)",
        crane.display()
    );
    // --tarball reads Docker's manifest.json; validate re-hashes every
    // layer (compressed and not) against the manifest and the config.
    let out = Command::new(&crane)
        .args(["validate", "--tarball"])
        .arg(archive())
        .output()
        .expect("run crane");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("PASS"),
        "crane validate: {text}"
    );
}

#[test]
fn the_layer_holds_exactly_the_planned_root_filesystem() {
    let entries = image().entries().expect("layer entries");
    let got: Vec<(String, bool, u32, u64)> = entries
        .iter()
        .map(|e| (e.path.clone(), e.is_dir, e.mode, e.uid))
        .collect();
    let d = |p: &str, mode, uid| (p.to_owned(), true, mode, uid);
    let f = |p: &str, mode| (p.to_owned(), false, mode, 0);
    let expected = vec![
        d("data", 0o700, 65532),
        d("etc", 0o755, 0),
        f("etc/group", 0o644),
        f("etc/passwd", 0o644),
        d("etc/ssl", 0o755, 0),
        d("etc/ssl/certs", 0o755, 0),
        f("etc/ssl/certs/ca-certificates.crt", 0o644),
        d("home", 0o755, 0),
        d("home/kontinuum", 0o700, 65532),
        d("tmp", 0o1777, 0),
        d("usr", 0o755, 0),
        d("usr/local", 0o755, 0),
        d("usr/local/bin", 0o755, 0),
        f("usr/local/bin/kontinuum-operator", 0o755),
        f("usr/local/bin/kontinuum-worker", 0o755),
        f("usr/local/bin/kontinuum", 0o755),
    ];
    assert_eq!(got, expected);
    assert!(
        entries.iter().all(|e| e.uid == e.gid),
        "uid and gid differ: {entries:?}"
    );
}

/// A program on this process's PATH (a Command given another PATH would
/// look there).
fn on_path(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not on PATH"))
}

/// Runs `argv` inside `root` as uid/gid 65532 (chroot --userspec; root only).
fn run_as_user(root: &Path, argv: &[&str]) -> Output {
    Command::new(on_path("chroot"))
        .arg("--userspec=65532:65532")
        .arg(root)
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/local/bin")
        .output()
        .expect("run chroot")
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0")
}

#[test]
fn the_binaries_are_static_and_run_as_the_unprivileged_user_in_the_rootfs() {
    assert!(
        is_root(),
        "this test unpacks the image with its owners and chroots into it, which needs root \
         (CI runs as root); run it as root"
    );
    let image = image();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("rootfs");
    std::fs::create_dir(&root).expect("mkdir");
    image.unpack(&root, true).expect("unpack");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).expect("passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("kontinuum:x:65532:65532:")),
        "{passwd}"
    );

    for name in ["kontinuum-operator", "kontinuum-worker", "kontinuum"] {
        let path = root.join("usr/local/bin").join(name);
        let bytes = std::fs::read(&path).expect("binary");
        assert_eq!(
            elf::interpreter(&path, &bytes).expect("ELF"),
            None,
            "{name} is dynamic"
        );
        let out = run_as_user(&root, &[&format!("/usr/local/bin/{name}"), "--help"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("Usage:"),
            "{name} --help in the image: {:?}\nstdout: {stdout}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Real work in the image, as the user: the engine's store in /data
    // (the user's), the job from /tmp. /etc is root's: refused.
    std::fs::copy(
        repo_root().join("examples/sum.yaml"),
        root.join("tmp/sum.yaml"),
    )
    .expect("copy job");
    let out = run_as_user(
        &root,
        &["kontinuum", "run", "/tmp/sum.yaml", "--data", "/data/store"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("Succeeded") && stdout.contains('9'),
        "kontinuum run in the image: {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_as_user(
        &root,
        &["kontinuum", "run", "/tmp/sum.yaml", "--data", "/etc/store"],
    );
    assert!(
        !out.status.success(),
        "the image's user could write /etc: it is not the unprivileged user"
    );
    assert!(!root.join("etc/store").exists());
}

/// The ctr namespace of the test's containers, and so the name of their
/// parent cgroup (containerd puts a container's cgroup under its namespace).
const CTR_NAMESPACE: &str = "kontinuum-image-test";

/// Directories a containerd's shims create on the host whatever they are
/// told (the shims' socket directory), children after parents.
const SHIM_HOST_DIRS: [&str; 2] = ["/run/containerd/s", "/run/containerd"];

/// A private containerd (its own root, state, socket, plugin directory,
/// runc state and FIFOs in a temporary directory), stopped when dropped;
/// it then removes what it created outside that directory (the containers'
/// parent cgroups, the shims' socket directory), so the host is left as it
/// was (tests/cluster/host-state.sh checks).
struct Containerd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    /// SHIM_HOST_DIRS that did not exist before it started.
    created: Vec<&'static str>,
}

impl Containerd {
    fn start() -> Containerd {
        let dir = tempfile::Builder::new()
            .prefix("ctd")
            .tempdir()
            .expect("tempdir");
        let d = dir.path().display();
        let created = SHIM_HOST_DIRS
            .into_iter()
            .filter(|p| !std::path::Path::new(p).exists())
            .collect();
        // No CRI plugin: this containerd only imports and runs images. Its
        // `opt` plugin would otherwise create /opt/containerd.
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n[grpc]\n  address = \"{d}/sock\"\n\
             [plugins.\"io.containerd.internal.v1.opt\"]\n  path = \"{d}/opt\"\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).expect("config");
        let log = std::fs::File::create(dir.path().join("containerd.log")).expect("log");
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.path().join("config.toml"))
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start containerd ({e}): apt-get install containerd (.ci/run does)")
            });
        let c = Containerd {
            child,
            dir,
            created,
        };
        let start = std::time::Instant::now();
        while c.ctr(&["version"]).status.code() != Some(0) {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(60),
                "containerd did not answer within 60 s: {}",
                std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(self.dir.path().join("sock"))
            .args(["--namespace", CTR_NAMESPACE]);
        match args.split_first() {
            // runc's state and the containers' FIFOs in our directory, not
            // under /run/containerd.
            Some((&"run", rest)) => cmd
                .arg("run")
                .arg("--runc-root")
                .arg(self.dir.path().join("runc"))
                .arg("--fifo-dir")
                .arg(self.dir.path().join("fifo"))
                .args(rest),
            _ => cmd.args(args),
        };
        cmd.output().expect("run ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // SIGTERM, so it unmounts its snapshots before the directory goes.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        // The containers are gone (`--rm`): their parent cgroups are empty.
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in controllers.flatten() {
                let _ = std::fs::remove_dir(c.path().join(CTR_NAMESPACE));
            }
        }
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{CTR_NAMESPACE}"));
        for p in &self.created {
            let _ = std::fs::remove_dir(p);
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn containerd_imports_the_archive_by_name_and_runs_it_as_the_unprivileged_user() {
    assert!(
        is_root(),
        "containerd needs root (CI runs as root); run this test as root"
    );
    let name = format!("kontinuum.dev/kontinuum:{}", workspace_version());
    let ctd = Containerd::start();
    let archive = archive().to_string_lossy().into_owned();
    let out = ctd.ctr(&["images", "import", &archive]);
    assert!(out.status.success(), "ctr images import: {}", text(&out));
    let out = ctd.ctr(&["images", "ls", "-q"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.lines().any(|l| l == name),
        "imported as {listed:?}, not {name}"
    );

    for (i, bin) in ["kontinuum-operator", "kontinuum-worker", "kontinuum"]
        .iter()
        .enumerate()
    {
        let id = format!("help-{i}");
        let out = ctd.ctr(&[
            "run",
            "--rm",
            &name,
            &id,
            &format!("/usr/local/bin/{bin}"),
            "--help",
        ]);
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{bin} --help in a container: {}",
            text(&out)
        );
    }
    // A job run in a container of the image, as its user: the store goes
    // to /data (the user's); /etc is root's and refused.
    let jobs = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo_root().join("examples/sum.yaml"),
        jobs.path().join("sum.yaml"),
    )
    .expect("copy");
    let mount = format!(
        "type=bind,src={},dst=/jobs,options=rbind:ro",
        jobs.path().display()
    );
    let run = |id: &str, data: &str| {
        ctd.ctr(&[
            "run",
            "--rm",
            "--mount",
            &mount,
            &name,
            id,
            "kontinuum",
            "run",
            "/jobs/sum.yaml",
            "--data",
            data,
        ])
    };
    let out = run("job-data", "/data/store");
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Succeeded"),
        "kontinuum run in a container: {}",
        text(&out)
    );
    let out = run("job-etc", "/etc/store");
    assert!(
        !out.status.success(),
        "the container's user could write /etc: {}",
        text(&out)
    );
}
