//! The archive writer against its own checker, and the checker against
//! archives damaged the ways a bad copy or a bad tool damages them.

use std::io::Read;

use kontinuum_image::archive::{self, Spec};
use kontinuum_image::rootfs::{Entry, Kind, layer_tar};
use kontinuum_image::verify;

fn spec() -> Spec {
    Spec {
        repository: "kontinuum.dev/kontinuum".into(),
        tag: "9.9.9".into(),
        created: 1_700_000_000,
        user: "65532:65532".into(),
        env: vec!["PATH=/usr/local/bin".into()],
        cmd: vec!["/usr/local/bin/kontinuum-operator".into()],
        labels: vec![("org.opencontainers.image.version".into(), "9.9.9".into())],
    }
}

fn entries() -> Vec<Entry> {
    vec![
        Entry {
            path: "tmp".into(),
            kind: Kind::Dir,
            mode: 0o1777,
            uid: 0,
        },
        Entry {
            path: "data".into(),
            kind: Kind::Dir,
            mode: 0o700,
            uid: 65532,
        },
        Entry {
            path: "etc/passwd".into(),
            kind: Kind::File(b"kontinuum:x:65532:65532::/:/sbin/nologin\n".to_vec()),
            mode: 0o644,
            uid: 0,
        },
    ]
}

fn build() -> Vec<u8> {
    let layer = layer_tar(&entries(), 1_700_000_000).expect("layer");
    let mut out = Vec::new();
    archive::write(&spec(), &layer, &mut out).expect("archive");
    out
}

/// Rewrites the outer tar, letting `edit` change, drop (None) or keep members.
fn rewrite(
    archive: &[u8],
    edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>,
    extra: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut input = tar::Archive::new(archive);
    let mut out = tar::Builder::new(Vec::new());
    for e in input.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("read");
        let is_dir = e.header().entry_type().is_dir();
        let data = if is_dir {
            Some(data)
        } else {
            edit(&path, data)
        };
        if let Some(data) = data {
            let mut h = e.header().clone();
            h.set_size(data.len() as u64);
            h.set_cksum();
            out.append(&h, data.as_slice()).expect("append");
        }
    }
    if let Some((path, data)) = extra {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).expect("path");
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        out.append(&h, data).expect("append");
    }
    out.into_inner().expect("tar")
}

fn error_of(archive: &[u8]) -> String {
    verify::read(archive)
        .expect_err("the checker must refuse this archive")
        .to_string()
}

#[test]
fn a_written_archive_checks_out_and_unpacks_what_was_put_in() {
    let bytes = build();
    assert_eq!(bytes, build(), "the same inputs must give the same bytes");
    let image = verify::read(&bytes).expect("valid");
    assert_eq!(image.name, "kontinuum.dev/kontinuum:9.9.9");
    assert_eq!(image.config["config"]["User"], "65532:65532");
    assert_eq!(image.config["created"], "2023-11-14T22:13:20Z");
    let got = image.entries().expect("entries");
    let summary: Vec<(&str, bool, u32, u64)> = got
        .iter()
        .map(|e| (e.path.as_str(), e.is_dir, e.mode, e.uid))
        .collect();
    assert_eq!(
        summary,
        [
            ("tmp", true, 0o1777, 0),
            ("data", true, 0o700, 65532),
            ("etc/passwd", false, 0o644, 0)
        ]
    );
    let dir = tempfile::tempdir().expect("tempdir");
    image.unpack(dir.path(), false).expect("unpack");
    let passwd = std::fs::read_to_string(dir.path().join("etc/passwd")).expect("passwd");
    assert!(passwd.contains(":65532:"), "{passwd}");
}

#[test]
fn a_changed_blob_is_refused_naming_it() {
    let bytes = build();
    let image = verify::read(&bytes).expect("valid");
    let layer = kontinuum_image::blob_path(&image.layers[0].digest);
    let damaged = rewrite(
        &bytes,
        |p, mut d| {
            if p == layer {
                let last = d.len() - 1;
                d[last] ^= 1;
            }
            Some(d)
        },
        None,
    );
    let err = error_of(&damaged);
    assert!(
        err.contains(&layer) && err.contains("does not hash to"),
        "{err}"
    );
}

#[test]
fn a_missing_blob_a_stray_blob_and_a_bad_index_are_refused() {
    let bytes = build();
    let image = verify::read(&bytes).expect("valid");
    let config =
        kontinuum_image::blob_path(image.manifest["config"]["digest"].as_str().expect("digest"));
    let without = rewrite(&bytes, |p, d| (p != config).then_some(d), None);
    let err = error_of(&without);
    assert!(
        err.contains("has no blob") && err.contains(&config),
        "{err}"
    );

    let stray_digest = kontinuum_image::digest(b"stray");
    let stray = kontinuum_image::blob_path(&stray_digest);
    let with_stray = rewrite(&bytes, |_, d| Some(d), Some((&stray, b"stray")));
    let err = error_of(&with_stray);
    assert!(
        err.contains(&stray) && err.contains("referenced by no descriptor"),
        "{err}"
    );

    let no_name = rewrite(
        &bytes,
        |p, d| {
            Some(if p == "index.json" {
                String::from_utf8(d)
                    .unwrap()
                    .replace("io.containerd.image.name", "x")
                    .into_bytes()
            } else {
                d
            })
        },
        None,
    );
    let err = error_of(&no_name);
    assert!(
        err.contains("index.json manifests[0]") && err.contains("io.containerd.image.name"),
        "{err}"
    );
}

#[test]
fn a_layer_that_is_not_its_diff_id_is_refused() {
    // A layer swapped for another valid gzip whose descriptor was fixed up
    // but whose config was not: only the diff_id check can catch it.
    let bytes = build();
    let image = verify::read(&bytes).expect("valid");
    let old = image.layers[0].digest.clone();
    let other_tar = layer_tar(&entries()[..1], 0).expect("layer");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &other_tar).expect("gzip");
    let other = gz.finish().expect("gzip");
    let new = kontinuum_image::digest(&other);
    let manifest_path = kontinuum_image::blob_path(&image.manifest_digest);
    let manifest = serde_json::to_vec(&{
        let mut m = image.manifest.clone();
        m["layers"][0]["digest"] = new.clone().into();
        m["layers"][0]["size"] = other.len().into();
        m
    })
    .expect("json");
    let new_manifest_digest = kontinuum_image::digest(&manifest);
    let swapped = rewrite(
        &bytes,
        |p, d| {
            if p == kontinuum_image::blob_path(&old) || p == manifest_path {
                None
            } else if p == "index.json" || p == "manifest.json" {
                let s = String::from_utf8(d).expect("utf-8");
                let s = s
                    .replace(&image.manifest_digest, &new_manifest_digest)
                    .replace(&old, &new);
                let s = s.replace(
                    &format!("\"size\":{}", image_manifest_len(&bytes, &manifest_path)),
                    &format!("\"size\":{}", manifest.len()),
                );
                Some(s.into_bytes())
            } else {
                Some(d)
            }
        },
        None,
    );
    let swapped = append(
        &swapped,
        &[
            (kontinuum_image::blob_path(&new), &other),
            (kontinuum_image::blob_path(&new_manifest_digest), &manifest),
        ],
    );
    let err = error_of(&swapped);
    assert!(err.contains("is not diff_id"), "{err}");
}

fn image_manifest_len(archive: &[u8], path: &str) -> usize {
    let mut a = tar::Archive::new(archive);
    for e in a.entries().expect("entries") {
        let e = e.expect("entry");
        if e.path().expect("path").to_string_lossy() == path {
            return e.header().size().expect("size") as usize;
        }
    }
    panic!("{path} not in the archive");
}

fn append(archive: &[u8], extra: &[(String, &[u8])]) -> Vec<u8> {
    let mut out = archive.to_vec();
    for (path, data) in extra {
        out = rewrite(&out, |_, d| Some(d), Some((path, data)));
    }
    out
}
