#!/usr/bin/env bash
# Import an OCI image archive into the real node's containerd, so pods can
# use the image without any registry (with imagePullPolicy IfNotPresent or
# Never). The image keeps the name in the archive's index.json annotation
# io.containerd.image.name (or org.opencontainers.image.ref.name).
#
#   tests/cluster/import-image.sh OCI_ARCHIVE [CLUSTER_DIR]   (default: $KONTINUUM_CLUSTER_DIR)
#
# Prints the imported image names on stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

archive=${1:-}
dir=${2:-${KONTINUUM_CLUSTER_DIR:-}}
[[ -n $archive && -n $dir ]] || die "usage: import-image.sh OCI_ARCHIVE [CLUSTER_DIR] (or set KONTINUUM_CLUSTER_DIR)"
[[ -f $archive ]] || die "$archive: no such file"
tar -tf "$archive" index.json >/dev/null 2>&1 \
  || die "$archive is not an OCI image archive (no index.json at its top)"
sock=$dir/node/containerd.sock
[[ -S $sock ]] \
  || die "cluster $dir has no running real node (no $sock); start it with KONTINUUM_REAL_NODE=1 tests/cluster/up.sh"
out=$(ctr -a "$sock" -n k8s.io images import "$archive" 2>&1) \
  || die "ctr images import $archive failed: $out"
# ctr prints "unpacking NAME (sha256:...)...done" for each image.
names=$(sed -n 's/^unpacking \(.*\) (sha256:.*/\1/p' <<<"$out")
[[ -n $names ]] || die "ctr imported no named image from $archive (does its index.json annotate io.containerd.image.name?): $out"
log "imported into the real node: $(tr '\n' ' ' <<<"$names")"
printf '%s\n' "$names"
