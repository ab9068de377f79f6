//! Reads an image archive back and checks it the way a runtime would before
//! trusting it: every descriptor's blob exists with its size and digest, the
//! media types fit, the config's diff_ids are the digests of the unpacked
//! layers, Docker's manifest.json agrees with the OCI index, and no blob is
//! left unreferenced.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;
use serde_json::Value;

use crate::archive::{
    CONFIG_MEDIA_TYPE, CONTAINERD_NAME, INDEX_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE,
    REF_NAME,
};
use crate::{Error, blob_path, digest};

/// A checked image: its documents and its layers, decompressed.
#[derive(Debug)]
pub struct Image {
    /// `io.containerd.image.name` of the index entry, e.g. `kontinuum.dev/kontinuum:0.1.0`.
    pub name: String,
    pub manifest_digest: String,
    pub manifest: Value,
    pub config: Value,
    pub layers: Vec<Layer>,
}

#[derive(Debug)]
pub struct Layer {
    pub digest: String,
    pub compressed_size: u64,
    pub tar: Vec<u8>,
}

/// One member of a layer tar, as a runtime would create it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    pub path: String,
    pub is_dir: bool,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
}

fn member_err(member: &str) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::invalid(member, e.to_string())
}

/// Every regular file of the outer tar by path (directories are implied).
fn members(archive: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, Error> {
    let mut out = BTreeMap::new();
    let mut tar = tar::Archive::new(archive);
    for entry in tar.entries().map_err(member_err("<archive>"))? {
        let mut entry = entry.map_err(member_err("<archive>"))?;
        let path = entry
            .path()
            .map_err(member_err("<archive>"))?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_owned();
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(member_err(&path))?;
        if out.insert(path.clone(), data).is_some() {
            return Err(Error::invalid(path, "appears twice in the archive"));
        }
    }
    Ok(out)
}

fn json(member: &str, bytes: &[u8]) -> Result<Value, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::invalid(member, format!("not JSON: {e}")))
}

fn str_at<'a>(member: &str, v: &'a Value, field: &str) -> Result<&'a str, Error> {
    v.pointer(field)
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(member, format!("{field} is missing or not a string")))
}

/// Follows a descriptor to its blob, checking size, digest and media type.
fn resolve<'a>(
    blobs: &'a BTreeMap<String, Vec<u8>>,
    used: &mut BTreeSet<String>,
    member: &str,
    desc: &Value,
    media_type: &str,
) -> Result<&'a [u8], Error> {
    let mt = str_at(member, desc, "/mediaType")?;
    if mt != media_type {
        return Err(Error::invalid(
            member,
            format!("mediaType {mt}, expected {media_type}"),
        ));
    }
    let d = str_at(member, desc, "/digest")?;
    let path = blob_path(d);
    let blob = blobs
        .get(&path)
        .ok_or_else(|| Error::invalid(member, format!("{d} has no blob {path}")))?;
    let size = desc.get("size").and_then(Value::as_u64);
    if size != Some(blob.len() as u64) {
        return Err(Error::invalid(
            member,
            format!("{d}: size {size:?} but the blob has {} bytes", blob.len()),
        ));
    }
    if digest(blob) != d {
        return Err(Error::invalid(
            member,
            format!("{path} does not hash to {d}"),
        ));
    }
    used.insert(path);
    Ok(blob)
}

/// Checks an archive written by [`crate::archive::write`] (or any one-image
/// OCI archive) and returns the image of its first index entry.
pub fn read(archive: &[u8]) -> Result<Image, Error> {
    let files = members(archive)?;
    let get = |m: &str| {
        files
            .get(m)
            .ok_or_else(|| Error::invalid(m, "missing from the archive"))
    };
    let layout = json("oci-layout", get("oci-layout")?)?;
    if str_at("oci-layout", &layout, "/imageLayoutVersion")? != "1.0.0" {
        return Err(Error::invalid(
            "oci-layout",
            "imageLayoutVersion is not 1.0.0",
        ));
    }
    let index = json("index.json", get("index.json")?)?;
    if index.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(Error::invalid("index.json", "schemaVersion is not 2"));
    }
    if str_at("index.json", &index, "/mediaType")? != INDEX_MEDIA_TYPE {
        return Err(Error::invalid(
            "index.json",
            "mediaType is not an OCI index",
        ));
    }
    let blobs: BTreeMap<String, Vec<u8>> = files
        .iter()
        .filter(|(k, _)| k.starts_with("blobs/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut used = BTreeSet::new();
    let entries = index
        .get("manifests")
        .and_then(Value::as_array)
        .filter(|m| !m.is_empty())
        .ok_or_else(|| Error::invalid("index.json", "manifests is missing or empty"))?;
    let mut first = None;
    for (i, desc) in entries.iter().enumerate() {
        let member = format!("index.json manifests[{i}]");
        let image = read_manifest(&blobs, &mut used, &member, desc)?;
        first.get_or_insert(image);
    }
    let image = first.ok_or_else(|| Error::invalid("index.json", "no manifest"))?;
    if let Some(docker) = files.get("manifest.json") {
        check_docker_manifest(&json("manifest.json", docker)?, &image)?;
    }
    if let Some(stray) = blobs.keys().find(|k| !used.contains(*k)) {
        return Err(Error::invalid(
            stray.clone(),
            "blob referenced by no descriptor",
        ));
    }
    Ok(image)
}

fn read_manifest(
    blobs: &BTreeMap<String, Vec<u8>>,
    used: &mut BTreeSet<String>,
    member: &str,
    desc: &Value,
) -> Result<Image, Error> {
    let name = str_at(
        member,
        desc,
        &format!("/annotations/{}", CONTAINERD_NAME.replace('/', "~1")),
    )?;
    let tag = str_at(
        member,
        desc,
        &format!("/annotations/{}", REF_NAME.replace('/', "~1")),
    )?;
    if !name.ends_with(&format!(":{tag}")) {
        return Err(Error::invalid(
            member,
            format!("image name {name} does not end in its tag {tag}"),
        ));
    }
    let manifest_digest = str_at(member, desc, "/digest")?.to_owned();
    let manifest_bytes = resolve(blobs, used, member, desc, MANIFEST_MEDIA_TYPE)?;
    let mname = format!("manifest {manifest_digest}");
    let manifest = json(&mname, manifest_bytes)?;
    let config_desc = manifest
        .get("config")
        .ok_or_else(|| Error::invalid(&mname, "no config"))?;
    let config = json(
        "config",
        resolve(blobs, used, &mname, config_desc, CONFIG_MEDIA_TYPE)?,
    )?;
    for (field, want) in [
        ("architecture", "/platform/architecture"),
        ("os", "/platform/os"),
    ] {
        let got = str_at("config", &config, &format!("/{field}"))?;
        if desc
            .pointer(want)
            .and_then(Value::as_str)
            .is_some_and(|p| p != got)
        {
            return Err(Error::invalid(
                "config",
                format!("{field} {got} differs from the index platform"),
            ));
        }
    }
    let diff_ids = config
        .pointer("/rootfs/diff_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid("config", "rootfs.diff_ids is missing"))?;
    let layer_descs = manifest
        .get("layers")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::invalid(&mname, "layers is missing"))?;
    if diff_ids.len() != layer_descs.len() {
        return Err(Error::invalid(
            "config",
            format!(
                "{} diff_ids for {} layers",
                diff_ids.len(),
                layer_descs.len()
            ),
        ));
    }
    let mut layers = Vec::new();
    for (i, (ld, diff_id)) in layer_descs.iter().zip(diff_ids).enumerate() {
        let lname = format!("{mname} layers[{i}]");
        let gz = resolve(blobs, used, &lname, ld, LAYER_MEDIA_TYPE)?;
        let mut tar = Vec::new();
        GzDecoder::new(gz)
            .read_to_end(&mut tar)
            .map_err(|e| Error::invalid(&lname, format!("not gzip: {e}")))?;
        if diff_id.as_str() != Some(digest(&tar).as_str()) {
            return Err(Error::invalid(
                &lname,
                format!(
                    "uncompressed digest {} is not diff_id {diff_id}",
                    digest(&tar)
                ),
            ));
        }
        layers.push(Layer {
            digest: str_at(&lname, ld, "/digest")?.to_owned(),
            compressed_size: gz.len() as u64,
            tar,
        });
    }
    Ok(Image {
        name: name.to_owned(),
        manifest_digest,
        manifest,
        config,
        layers,
    })
}

fn check_docker_manifest(docker: &Value, image: &Image) -> Result<(), Error> {
    let m = "manifest.json";
    let entry = docker
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| Error::invalid(m, "not a non-empty array"))?;
    let config_digest = str_at("manifest", &image.manifest, "/config/digest")?;
    if str_at(m, entry, "/Config")? != blob_path(config_digest) {
        return Err(Error::invalid(
            m,
            "Config is not the OCI manifest's config blob",
        ));
    }
    let layers: Vec<String> = image.layers.iter().map(|l| blob_path(&l.digest)).collect();
    let listed: Vec<&str> = entry
        .get("Layers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if listed != layers {
        return Err(Error::invalid(
            m,
            "Layers differ from the OCI manifest's layers",
        ));
    }
    let tags = entry.get("RepoTags").and_then(Value::as_array);
    if !tags.is_some_and(|t| t.iter().any(|t| t.as_str() == Some(image.name.as_str()))) {
        return Err(Error::invalid(
            m,
            format!("RepoTags does not hold {}", image.name),
        ));
    }
    Ok(())
}

impl Image {
    /// The members of every layer, in order (one image has one layer).
    pub fn entries(&self) -> Result<Vec<LayerEntry>, Error> {
        let mut out = Vec::new();
        for layer in &self.layers {
            let mut tar = tar::Archive::new(layer.tar.as_slice());
            for e in tar.entries().map_err(member_err(&layer.digest))? {
                let e = e.map_err(member_err(&layer.digest))?;
                let h = e.header();
                let err = member_err(&layer.digest);
                out.push(LayerEntry {
                    path: e
                        .path()
                        .map_err(&err)?
                        .to_string_lossy()
                        .trim_end_matches('/')
                        .to_owned(),
                    is_dir: h.entry_type().is_dir(),
                    mode: h.mode().map_err(&err)?,
                    uid: h.uid().map_err(&err)?,
                    gid: h.gid().map_err(&err)?,
                    size: h.size().map_err(&err)?,
                });
            }
        }
        Ok(out)
    }

    /// Unpacks the layers into `dir` as a runtime would (modes kept; owners
    /// too when `ownership` is set, which needs root).
    pub fn unpack(&self, dir: &Path, ownership: bool) -> Result<(), Error> {
        for layer in &self.layers {
            let mut tar = tar::Archive::new(layer.tar.as_slice());
            tar.set_preserve_permissions(true);
            tar.set_preserve_ownerships(ownership);
            tar.unpack(dir).map_err(|source| Error::Unpack {
                digest: layer.digest.clone(),
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        Ok(())
    }
}
