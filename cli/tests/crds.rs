//! crds/ must hold exactly what the api crate generates; `kontinuum crds`
//! prints it and `kontinuum crds --dir` writes it.

use std::path::Path;
use std::process::Command;

const REGENERATE: &str =
    "regenerate with `cargo run --bin kontinuum -- crds --dir crds` and commit";

fn generated() -> Vec<(&'static str, String)> {
    kontinuum_api::crds::crd_files().expect("the CRDs render")
}

#[test]
fn crds_dir_has_not_drifted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    let mut expected_names = Vec::new();
    for (name, yaml) in generated() {
        let on_disk = std::fs::read_to_string(dir.join(name))
            .unwrap_or_else(|e| panic!("crds/{name}: {e}; {REGENERATE}"));
        assert!(
            on_disk == yaml,
            "crds/{name} differs from the types: {REGENERATE}"
        );
        expected_names.push(name.to_string());
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    on_disk.sort();
    expected_names.sort();
    assert_eq!(
        on_disk, expected_names,
        "crds/ holds other files: {REGENERATE}"
    );
}

#[test]
fn crds_command_prints_the_stream() {
    let out = Command::new(env!("CARGO_BIN_EXE_kontinuum"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected = kontinuum_api::crds::crds_yaml().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout) == expected);
}

#[test]
fn crds_command_writes_files() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("new");
    let out = Command::new(env!("CARGO_BIN_EXE_kontinuum"))
        .args(["crds", "--dir"])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, yaml) in generated() {
        assert_eq!(std::fs::read_to_string(target.join(name)).unwrap(), yaml);
    }
}
