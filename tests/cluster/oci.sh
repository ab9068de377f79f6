# oci_archive BINARY IMAGE_NAME USER OUT: writes OUT, an OCI image archive
# (oci-layout, index.json, blobs) whose one layer holds BINARY as /BINARY_NAME,
# its entrypoint. No container daemon or registry is involved: the archive is
# made with tar, sha256sum and jq, byte-for-byte reproducible (fixed mtimes,
# owners and order), and `ctr images import` names the image IMAGE_NAME from
# the io.containerd.image.name annotation. Sourced by build.sh.
oci_archive() {
  local bin=$1 name=$2 user=$3 out=$4
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/kontinuum-oci.XXXXXX")
  # shellcheck disable=SC2064  # expand now: $work is local
  trap "rm -rf '$work'" RETURN
  local exe
  exe=$(basename "$bin")
  mkdir -p "$work/rootfs/etc" "$work/rootfs/tmp" "$work/layout/blobs/sha256"
  install -m 0755 "$bin" "$work/rootfs/$exe"
  chmod 1777 "$work/rootfs/tmp"
  tar_fixed() { tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=ustar "$@"; }
  tar_fixed -C "$work/rootfs" -cf "$work/layer.tar" etc tmp "$exe"

  jq -cn --arg exe "/$exe" --arg user "$user" \
    '{Entrypoint: [$exe], User: $user, WorkingDir: "/"}' >"$work/image-config.json"
  oci_pack "$work/layer.tar" "$name" "$work/image-config.json" "$out"
}

# oci_pack LAYER_TAR IMAGE_NAME CONFIG_JSON OUT: writes OUT, an OCI image
# archive of one uncompressed layer (LAYER_TAR, moved into the archive) with
# CONFIG_JSON as the image's `config` (Entrypoint, Cmd, User, Env, ...).
oci_pack() {
  local layer_tar=$1 name=$2 image_config=$3 out=$4
  local work
  # Removed at the end, not by a RETURN trap: a trap set here would stay
  # set in the caller (oci_archive has its own).
  work=$(mktemp -d "${TMPDIR:-/tmp}/kontinuum-oci-pack.XXXXXX")
  mkdir -p "$work/layout/blobs/sha256"
  tar_fixed() { tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 --format=ustar "$@"; }
  # blob FILE: move FILE into blobs/ under its digest; print "DIGEST SIZE".
  blob() {
    local d s
    d=$(sha256sum "$1" | cut -d' ' -f1)
    s=$(stat -c %s "$1")
    mv "$1" "$work/layout/blobs/sha256/$d"
    echo "sha256:$d $s"
  }
  local layer layer_size config config_size manifest manifest_size
  read -r layer layer_size < <(blob "$layer_tar")
  jq -cn --arg layer "$layer" --slurpfile c "$image_config" '{
      architecture: "amd64", os: "linux",
      config: $c[0],
      rootfs: {type: "layers", diff_ids: [$layer]}
    }' >"$work/config.json"
  read -r config config_size < <(blob "$work/config.json")
  jq -cn --arg c "$config" --argjson cs "$config_size" --arg l "$layer" --argjson ls "$layer_size" '{
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $c, size: $cs},
      layers: [{mediaType: "application/vnd.oci.image.layer.v1.tar", digest: $l, size: $ls}]
    }' >"$work/manifest.json"
  read -r manifest manifest_size < <(blob "$work/manifest.json")
  jq -cn --arg m "$manifest" --argjson ms "$manifest_size" --arg name "$name" '{
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [{
        mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $m, size: $ms,
        platform: {architecture: "amd64", os: "linux"},
        annotations: {"io.containerd.image.name": $name, "org.opencontainers.image.ref.name": ($name | sub(".*:"; ""))}
      }]
    }' >"$work/layout/index.json"
  echo '{"imageLayoutVersion":"1.0.0"}' >"$work/layout/oci-layout"
  tar_fixed -C "$work/layout" -cf "$out.tmp" oci-layout index.json blobs
  mv "$out.tmp" "$out"
  rm -rf "$work"
}
