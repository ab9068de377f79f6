//! `scripts/build-image --worker kontinuum-seed-worker`: a worker built with
//! the SDK as an image on the stock base, checked with our reader and run
//! from its unpacked layer. (The first test builds the seed worker for musl,
//! which takes minutes on a cold cache.)

use kontinuum_image::verify;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn the_seed_worker_becomes_an_image_on_the_stock_base() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("seed.tar");
    let built = Command::new("bash")
        .arg(root().join("scripts/build-image"))
        .args(["--worker", "kontinuum-seed-worker", "--out"])
        .arg(&out)
        .current_dir(root())
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "scripts/build-image --worker failed:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let image = verify::read(&std::fs::read(&out).unwrap()).expect("a valid OCI archive");
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        image.name,
        format!("kontinuum.dev/kontinuum-seed-worker:{version}")
    );
    let config = &image.config["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(
        config["Cmd"],
        serde_json::json!(["/usr/local/bin/kontinuum-seed-worker"])
    );
    let paths: Vec<String> = image
        .entries()
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(
        paths,
        [
            "data",
            "etc",
            "etc/group",
            "etc/passwd",
            "etc/ssl",
            "etc/ssl/certs",
            "etc/ssl/certs/ca-certificates.crt",
            "home",
            "home/kontinuum",
            "tmp",
            "usr",
            "usr/local",
            "usr/local/bin",
            "usr/local/bin/kontinuum-seed-worker",
        ]
    );

    let rootfs = dir.path().join("rootfs");
    image.unpack(&rootfs, false).unwrap();
    let ca = std::fs::read(rootfs.join("etc/ssl/certs/ca-certificates.crt")).unwrap();
    assert_eq!(
        ca,
        std::fs::read("/etc/ssl/certs/ca-certificates.crt").unwrap()
    );
    // Static: it runs with nothing of the host's libc (and says what it needs).
    let ran = Command::new(rootfs.join("usr/local/bin/kontinuum-seed-worker"))
        .output()
        .unwrap();
    assert_eq!(ran.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&ran.stderr);
    assert!(stderr.contains("--server <URL>"), "{stderr}");
}

#[test]
fn a_dynamic_binary_is_refused_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kontinuum-image"))
        .args([
            "worker",
            "--binary",
            "/bin/ls",
            "--repository",
            "x/y",
            "--tag",
            "1",
            "--out",
        ])
        .arg(dir.path().join("x.tar"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/bin/ls is dynamically linked") && err.contains("x86_64-unknown-linux-musl"),
        "{err}"
    );
    assert!(!dir.path().join("x.tar").exists());
}
