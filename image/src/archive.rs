//! The OCI image layout (oci-layout, index.json, blobs/sha256/...) packed in
//! one tar, plus Docker's manifest.json so `docker load` takes it too.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use crate::{Error, blob_path, digest};

pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// containerd names an imported image by this annotation (`ctr images import`).
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI layout's own reference: by convention the tag alone.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What the image is called and how it starts.
pub struct Spec {
    /// Repository, e.g. `kontinuum.dev/kontinuum`.
    pub repository: String,
    pub tag: String,
    /// Seconds since the epoch for every timestamp (SOURCE_DATE_EPOCH).
    pub created: i64,
    pub user: String,
    pub env: Vec<String>,
    pub cmd: Vec<String>,
    /// OCI annotations/labels (`org.opencontainers.image.*`).
    pub labels: Vec<(String, String)>,
}

/// Digests and sizes of what [`write`] produced.
#[derive(Debug, Clone)]
pub struct Summary {
    pub name: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub layer_digest: String,
    /// The gzip'd layer as stored and pulled.
    pub layer_compressed: u64,
    /// The layer tar as unpacked on a node.
    pub layer_uncompressed: u64,
}

fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn descriptor(media_type: &str, bytes: &[u8]) -> Value {
    json!({"mediaType": media_type, "digest": digest(bytes), "size": bytes.len()})
}

/// Writes the archive of a one-layer image to `out`.
pub fn write(spec: &Spec, layer_tar: &[u8], out: impl Write) -> Result<Summary, Error> {
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(layer_tar).map_err(Error::Tar)?;
    let layer = gz.finish().map_err(Error::Tar)?;

    let created = rfc3339(spec.created);
    let labels: serde_json::Map<String, Value> = spec
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let config = json!({
        "created": created,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "User": spec.user,
            "Env": spec.env,
            "Cmd": spec.cmd,
            "WorkingDir": "/",
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]},
        "history": [{"created": created, "created_by": "scripts/build-image (kontinuum-image build)"}],
    });
    let config = to_vec(&config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": descriptor(CONFIG_MEDIA_TYPE, &config),
        "layers": [descriptor(LAYER_MEDIA_TYPE, &layer)],
        "annotations": labels,
    });
    let manifest = to_vec(&manifest)?;
    let name = format!("{}:{}", spec.repository, spec.tag);
    let mut manifest_desc = descriptor(MANIFEST_MEDIA_TYPE, &manifest);
    manifest_desc["platform"] = json!({"architecture": "amd64", "os": "linux"});
    manifest_desc["annotations"] = json!({CONTAINERD_NAME: name, REF_NAME: spec.tag});
    let index = to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX_MEDIA_TYPE,
        "manifests": [manifest_desc],
    }))?;
    let docker = to_vec(&json!([{
        "Config": blob_path(&digest(&config)),
        "RepoTags": [name],
        "Layers": [blob_path(&digest(&layer))],
    }]))?;
    let layout = to_vec(&json!({"imageLayoutVersion": "1.0.0"}))?;

    let mut tar = tar::Builder::new(out);
    let mut add = |path: &str, data: &[u8], dir: bool| -> Result<(), Error> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).map_err(Error::Tar)?;
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_size(data.len() as u64);
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_mtime(u64::try_from(spec.created).unwrap_or(0));
        h.set_cksum();
        tar.append(&h, data).map_err(Error::Tar)
    };
    add("oci-layout", &layout, false)?;
    add("index.json", &index, false)?;
    add("manifest.json", &docker, false)?;
    add("blobs/", &[], true)?;
    add("blobs/sha256/", &[], true)?;
    for blob in [&config, &manifest, &layer] {
        add(&blob_path(&digest(blob)), blob, false)?;
    }
    tar.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(Error::Tar)?;
    Ok(Summary {
        name,
        manifest_digest: digest(&manifest),
        config_digest: digest(&config),
        layer_digest: digest(&layer),
        layer_compressed: layer.len() as u64,
        layer_uncompressed: layer_tar.len() as u64,
    })
}

fn to_vec(v: &Value) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(v).map_err(|e| Error::Tar(std::io::Error::other(e)))
}
