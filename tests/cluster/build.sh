#!/usr/bin/env bash
# Build (or reuse) the binaries of the test control plane from the Go module
# proxy: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
# etcd, helm, kwok and crane, at the versions pinned in versions.env.
#
#   tests/cluster/build.sh [all|k8s|etcd|helm|kwok|crane]...   (default: all)
#   tests/cluster/build.sh node         CoreDNS and the images of the real node
#   tests/cluster/build.sh provisioner  the storage provisioner (every cluster)
#   tests/cluster/build.sh prometheus   Prometheus (for tests that start one)
#   tests/cluster/build.sh debian       a Debian image with Python 3 (mmdebstrap)
#   tests/cluster/build.sh s3           s3s-fs, an S3-compatible store (cargo install)
#
# Each component is built in a wrapper Go module of its own and installed into
#   ${KONTINUUM_CACHE:-~/.cache/kontinuum}/<component>/<version>/bin
# A component whose bin dir already exists is not rebuilt, so only the first
# run on a machine is slow (see docs/testing.md for measured times).
# Progress goes to stderr; the full go output goes to <component>/<version>/build.log.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"

CACHE=${KONTINUUM_CACHE:-$HOME/.cache/kontinuum}
# The machine has 2 cores shared with other builds (cargo): a nice'd go build
# still uses both, but yields to interactive work.
NICE=${KONTINUUM_BUILD_NICE:-10}

log() { printf '[kontinuum build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

command -v go >/dev/null || die "go is not installed (Go >= 1.26 is needed)"
command -v jq >/dev/null || die "jq is not installed (apt-get install jq)"

# Go toolchain: the machine's Go is used unless a module needs a newer one; then
# the only approved way is GOTOOLCHAIN=go1.27.3, which callers may export.
export GOTOOLCHAIN=${GOTOOLCHAIN:-local}
export GOFLAGS=${GOFLAGS:--buildvcs=false}
export CGO_ENABLED=0

# run_go_build LOGFILE ARGS... — runs `go build -v` at low priority and turns
# its one-line-per-package output into a progress line every 100 packages, so
# a cold build (thousands of packages) shows it is alive without flooding.
run_go_build() {
  local logfile=$1; shift
  local start=$SECONDS n=0 line
  # pipefail makes the pipeline report go's exit status.
  nice -n "$NICE" go build -v "$@" 2>&1 | while IFS= read -r line; do
    printf '%s\n' "$line" >>"$logfile"
    n=$((n + 1))
    if ((n % 100 == 0)); then
      log "  ... $n packages compiled ($((SECONDS - start))s)"
    fi
  done || { tail -n 30 "$logfile" >&2; return 1; }
}

# with_lock DIR CMD... — two concurrent builds (e.g. two clusters started at
# once on a cold machine) must not write the same cache dir: serialize by flock.
with_lock() {
  local dir=$1; shift
  mkdir -p "$dir"
  (
    flock 9
    "$@"
  ) 9>"$dir/.lock"
}

# ---------------------------------------------------------------------------
# Kubernetes. k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces
# every k8s.io/* staging module with ./staging/src/..., which only exists in
# the git checkout. A wrapper module requires k8s.io/kubernetes and replaces
# each staging module with its published v0.<minor>.<patch> instead. The list
# is generated from that release's own go.mod every time, never hand-copied.
# Every command of the one Kubernetes build; the real node (KONTINUUM_REAL_NODE)
# needs kubelet and kube-proxy, built with the rest so versions match.
K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)
k8s_built() {
  local c
  for c in "${K8S_COMMANDS[@]}"; do [[ -x $1/bin/$c ]] || return 1; done
}

build_k8s() {
  local v=$KUBERNETES_VERSION
  local root=$CACHE/k8s/$v
  k8s_built "$root" && return 0
  with_lock "$root" build_k8s_locked
}

build_k8s_locked() {
  local v=$KUBERNETES_VERSION
  local root=$CACHE/k8s/$v
  k8s_built "$root" && return 0
  log "Building Kubernetes $v (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy)."
  log "First use on this machine: a cold build takes ~15 min on 2 cores (measured, empty Go caches). Log: $root/build.log"

  [[ $v =~ ^v1\.([0-9]+)\.([0-9]+)$ ]] || die "KUBERNETES_VERSION must look like v1.Y.Z, got $v"
  local minor=${BASH_REMATCH[1]} patch=${BASH_REMATCH[2]}
  local staging_v="v0.$minor.$patch"

  local src=$root/src
  rm -rf "$src" && mkdir -p "$src"
  : >"$root/build.log"

  log "Downloading k8s.io/kubernetes@$v and reading its go.mod"
  local info
  info=$(go mod download -json "k8s.io/kubernetes@$v") || die "cannot download k8s.io/kubernetes@$v"
  local upstream_mod release_time
  upstream_mod=$(jq -r .GoMod <<<"$info")
  release_time=$(jq -r '.Info' <<<"$info" | xargs jq -r '.Time // empty')
  local modjson
  modjson=$(go mod edit -json "$upstream_mod")

  # Start the wrapper's go.mod with the release's own go and godebug lines.
  (
    cd "$src"
    go mod init kontinuum.dev/testcluster/k8s >/dev/null 2>&1
    local gov
    gov=$(jq -r '.Go // empty' <<<"$modjson")
    [[ -n $gov ]] && go mod edit -go="$gov"
    local gd
    while IFS= read -r gd; do
      [[ -n $gd ]] && go mod edit -godebug="$gd"
    done < <(jq -r '(.GoDebug // [])[] | "\(.Key)=\(.Value)"' <<<"$modjson")
    go mod edit -require="k8s.io/kubernetes@$v"

    # Every replace of the release, rewritten: ./staging/src/k8s.io/X becomes
    # k8s.io/X@v0.Y.Z; a replace to a published version is kept as it is; any
    # other local path cannot be reproduced outside the checkout, so it fails.
    local old newp newv n=0
    while IFS=$'\t' read -r old newp newv; do
      if [[ $newp == ./staging/src/* ]]; then
        [[ $newp == "./staging/src/$old" ]] || die "unexpected staging replace $old => $newp"
        go mod edit -replace="$old=$old@$staging_v"
      elif [[ -n $newv ]]; then
        go mod edit -replace="$old=$newp@$newv"
      else
        die "cannot reproduce local replace $old => $newp"
      fi
      n=$((n + 1))
    done < <(jq -r '(.Replace // [])[] | [.Old.Path, .New.Path, (.New.Version // "")] | @tsv' <<<"$modjson")
    log "Wrapper module: $n replaces generated (staging modules at $staging_v)"
  )

  # Version info, as hack/lib/version.sh would stamp it. The module zip has no
  # git metadata, so the commit is unknown and the tree state is "archive";
  # the build date is the release's publication time (reproducible).
  local pkg ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitCommit=0000000000000000000000000000000000000000"
    ldflags+=" -X $pkg.gitTreeState=archive -X $pkg.buildDate=${release_time:-1970-01-01T00:00:00Z}"
  done

  log "Compiling (one go build for all four commands; progress every 100 packages)"
  local start=$SECONDS
  rm -rf "$root/bin.tmp" && mkdir -p "$root/bin.tmp"
  (
    cd "$src"
    # -mod=mod lets go fill go.mod/go.sum of the wrapper from the release's
    # requirements (MVS) while it builds, instead of a slow `go mod tidy`.
    run_go_build "$root/build.log" -mod=mod -trimpath -ldflags "$ldflags" -o "$root/bin.tmp/" \
      k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager \
      k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl \
      k8s.io/kubernetes/cmd/kubelet \
      k8s.io/kubernetes/cmd/kube-proxy
  ) || die "Kubernetes build failed; see $root/build.log"
  rm -rf "$root/bin" && mv "$root/bin.tmp" "$root/bin"
  log "Kubernetes $v built in $(((SECONDS - start) / 60))m$(((SECONDS - start) % 60))s -> $root/bin"
  "$root/bin/kubectl" version --client >&2 || true
}

# ---------------------------------------------------------------------------
# A plain Go command in a wrapper module: build_simple NAME VERSION MODULE PKG.
# Wrapping (instead of `go install MODULE/PKG@VERSION`) lets us stamp versions
# and keep the build recipe in one shape for every component.
build_simple() {
  local name=$1 v=$2
  local root=$CACHE/$name/$v
  [[ -x $root/bin/$name ]] && return 0
  with_lock "$root" build_simple_locked "$@"
}

build_simple_locked() {
  local name=$1 v=$2 module=$3 pkg=$4 ldflags=${5:-}
  local root=$CACHE/$name/$v
  [[ -x $root/bin/$name ]] && return 0
  log "Building $name $v from $pkg (first use on this machine; log: $root/build.log)"
  local src=$root/src start=$SECONDS
  rm -rf "$src" "$root/bin.tmp" && mkdir -p "$src" "$root/bin.tmp"
  : >"$root/build.log"
  (
    cd "$src"
    go mod init "kontinuum.dev/testcluster/$name" >/dev/null 2>&1
    # A wrapper inherits no replaces from the module it requires, so the
    # require is all we need; -mod=mod fills in the rest while building.
    local gov
    gov=$(go mod download -json "$module@$v" | jq -r .GoMod | xargs go mod edit -json | jq -r '.Go // empty')
    [[ -n $gov ]] && go mod edit -go="$gov"
    go mod edit -require="$module@$v"
    run_go_build "$root/build.log" -mod=mod -trimpath -ldflags "-s -w $ldflags" -o "$root/bin.tmp/$name" "$pkg"
  ) || die "$name build failed; see $root/build.log"
  rm -rf "$root/bin" && mv "$root/bin.tmp" "$root/bin"
  log "$name $v built in $((SECONDS - start))s -> $root/bin"
}

build_etcd() {
  build_simple etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/server/v3
}

build_helm() {
  # helm's version package is internal/version; stamping it makes `helm version`
  # print the pinned release instead of "v3.x-dev".
  build_simple helm "$HELM_VERSION" helm.sh/helm/v3 helm.sh/helm/v3/cmd/helm \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=archive"
}

build_kwok() {
  build_simple kwok "$KWOK_VERSION" sigs.k8s.io/kwok sigs.k8s.io/kwok/cmd/kwok \
    "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
  kwok_stages
}

# crane (go-containerregistry): tests/tests/image.rs checks the image archive
# of scripts/build-image with `crane validate`, a reader written by others.
build_crane() {
  build_simple crane "$CRANE_VERSION" github.com/google/go-containerregistry \
    github.com/google/go-containerregistry/cmd/crane
}

# kwok run on its own (not through kwokctl) has no built-in lifecycle: its
# config must list the Stages. We take the same default set that kwokctl
# uses (node initialize + lease heartbeat, pod ready/complete/delete) from
# the YAML files shipped in the pinned kwok module, so they match its version.
kwok_stages() {
  local out=$CACHE/kwok/$KWOK_VERSION/stages.yaml
  [[ -s $out ]] && return 0
  local dir f
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | jq -r .Dir)
  {
    for f in node/fast/node-initialize.yaml \
      node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
      pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
      [[ -f $dir/kustomize/stage/$f ]] || die "kwok $KWOK_VERSION has no stage $f"
      echo "---"
      cat "$dir/kustomize/stage/$f"
    done
  } >"$out.tmp"
  mv "$out.tmp" "$out"
  log "kwok stages written to $out"
}

# ---------------------------------------------------------------------------
# The real node (KONTINUUM_REAL_NODE=1), storage and Prometheus.

# CoreDNS with only the plugins the cluster DNS uses. Its own main package
# imports core/plugin, which links every plugin (cloud DNS back ends and
# their SDKs): our main imports a handful instead, so it builds in a fraction
# of the time. Plugins not linked are simply unknown to a Corefile.
build_coredns() {
  local root=$CACHE/coredns/$COREDNS_VERSION
  [[ -x $root/bin/coredns ]] && return 0
  with_lock "$root" build_coredns_locked
}

build_coredns_locked() {
  local v=$COREDNS_VERSION root=$CACHE/coredns/$COREDNS_VERSION
  [[ -x $root/bin/coredns ]] && return 0
  log "Building CoreDNS $v (first use on this machine; log: $root/build.log)"
  local src=$root/src start=$SECONDS
  rm -rf "$src" "$root/bin.tmp" && mkdir -p "$src" "$root/bin.tmp"
  : >"$root/build.log"
  (
    cd "$src"
    go mod init kontinuum.dev/testcluster/coredns >/dev/null 2>&1
    local gov
    gov=$(go mod download -json "github.com/coredns/coredns@$v" | jq -r .GoMod | xargs go mod edit -json | jq -r '.Go // empty')
    [[ -n $gov ]] && go mod edit -go="$gov"
    go mod edit -require="github.com/coredns/coredns@$v"
    cat >main.go <<'GO'
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
GO
    run_go_build "$root/build.log" -mod=mod -trimpath -ldflags "-s -w" -o "$root/bin.tmp/coredns" .
  ) || die "CoreDNS build failed; see $root/build.log"
  rm -rf "$root/bin" && mv "$root/bin.tmp" "$root/bin"
  log "CoreDNS $v built in $((SECONDS - start))s -> $root/bin"
}

# Prometheus without its web UI assets (they need an npm build; the HTTP API
# that tests query is all there) and without the cloud service discoveries
# (build tags remove_all_sd, enable_kubernetes_sd keep file, http, static and
# kubernetes), which would triple the build. GOFLAGS carries the tags because
# build_simple passes only ldflags; commands without build flags ignore them.
build_prometheus() {
  local v=$PROMETHEUS_VERSION
  [[ $v =~ ^v0\.([0-9]+)([0-9][0-9])\.([0-9]+)$ ]] || die "PROMETHEUS_VERSION must look like v0.3YY.Z, got $v"
  local human="${BASH_REMATCH[1]}.$((10#${BASH_REMATCH[2]})).${BASH_REMATCH[3]}"
  GOFLAGS="$GOFLAGS -tags=remove_all_sd,enable_kubernetes_sd" \
    build_simple prometheus "$v" github.com/prometheus/prometheus \
    github.com/prometheus/prometheus/cmd/prometheus \
    "-X github.com/prometheus/common/version.Version=$human -X github.com/prometheus/common/version.Branch=archive"
}

# Programs of our own, in tests/cluster/NAME (a Go module with go.sum), are
# cached by the hash of their sources, so an edit rebuilds them.
own_root() {
  local name=$1 hash
  hash=$(cd "$here/$name" && find . -maxdepth 1 -type f \( -name 'go.*' -o -name '*.go' \) -print0 \
    | sort -z | xargs -0 cat "$here/oci.sh" | sha256sum | cut -c1-16)
  echo "$CACHE/$name/$hash"
}

build_own() {
  local name=$1 root
  root=$(own_root "$name")
  [[ -x $root/bin/$name ]] && return 0
  with_lock "$root" build_own_locked "$name" "$root"
}

build_own_locked() {
  local name=$1 root=$2
  [[ -x $root/bin/$name ]] && return 0
  log "Building $name from tests/cluster/$name (log: $root/build.log)"
  rm -rf "$root/bin.tmp" && mkdir -p "$root/bin.tmp"
  : >"$root/build.log"
  (cd "$here/$name" && run_go_build "$root/build.log" -trimpath -ldflags "-s -w" -o "$root/bin.tmp/$name" .) \
    || die "$name build failed; see $root/build.log"
  rm -rf "$root/bin" && mv "$root/bin.tmp" "$root/bin"
}

# The node's images, as OCI archives beside the binary: the pod sandbox
# (pause) image that containerd's CRI config names, and the test image. One
# static binary serves both (see testimage/main.go).
build_images() {
  build_own testimage
  local root
  root=$(own_root testimage)
  [[ -s $root/pause.oci.tar && -s $root/testimage.oci.tar ]] && return 0
  # shellcheck source=oci.sh
  source "$here/oci.sh"
  # 65535: the pause process needs no privileges.
  oci_archive "$root/bin/testimage" "$PAUSE_IMAGE" 65535:65535 "$root/pause.oci.tar"
  oci_archive "$root/bin/testimage" "$TEST_IMAGE" 0:0 "$root/testimage.oci.tar"
  log "images $PAUSE_IMAGE and $TEST_IMAGE -> $root"
}

# An image of Debian's with Python 3, as users bring (python:3-slim stands
# for it): mmdebstrap writes the root filesystem as one tar from Debian's
# mirror, which is the image's one layer. Root is its user, as in Debian's
# own images; the operator's pods run it as a non-root uid.
build_debian() {
  local root=$CACHE/debian/$DEBIAN_SUITE-$DEBIAN_PACKAGES-$DEBIAN_RECIPE
  [[ -s $root/debian-python.oci.tar ]] && return 0
  with_lock "$root" build_debian_locked "$root"
}

build_debian_locked() {
  local root=$1
  [[ -s $root/debian-python.oci.tar ]] && return 0
  command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap)"
  log "Building $DEBIAN_IMAGE with mmdebstrap ($DEBIAN_SUITE, $DEBIAN_PACKAGES)"
  # Sourced before the RETURN trap below: finishing `source` fires it.
  # shellcheck source=oci.sh
  source "$here/oci.sh"
  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/kontinuum-debian.XXXXXX")
  # shellcheck disable=SC2064  # expand now
  trap "rm -rf '$work'" RETURN
  nice -n "$NICE" mmdebstrap --quiet --variant=essential --include="$DEBIAN_PACKAGES" \
    "$DEBIAN_SUITE" "$work/rootfs.tar" >"$root/build.log" 2>&1 \
    || { tail -n 30 "$root/build.log" >&2; die "mmdebstrap failed; see $root/build.log"; }
  jq -cn '{Cmd: ["python3"], Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], WorkingDir: "/"}' \
    >"$work/config.json"
  oci_pack "$work/rootfs.tar" "$DEBIAN_IMAGE" "$work/config.json" "$root/debian-python.oci.tar.tmp"
  mv "$root/debian-python.oci.tar.tmp" "$root/debian-python.oci.tar"
  log "image $DEBIAN_IMAGE -> $root/debian-python.oci.tar"
}

# An S3-compatible store from crates.io (s3s-fs), installed by cargo into
# the cache: every cluster runs one (up.sh) for the object-source tests.
build_s3() {
  local root=$CACHE/s3s-fs/$S3S_FS_VERSION
  [[ -x $root/bin/s3s-fs ]] && return 0
  with_lock "$root" build_s3_locked "$root"
}

build_s3_locked() {
  local root=$1
  [[ -x $root/bin/s3s-fs ]] && return 0
  command -v cargo >/dev/null || die "cargo is not installed (s3s-fs is built with it)"
  log "Building s3s-fs $S3S_FS_VERSION with cargo install (log: $root/build.log)"
  local start=$SECONDS
  # Its own target dir: never the workspace's, whose lock a test run holds.
  nice -n "$NICE" cargo install s3s-fs --version "$S3S_FS_VERSION" --features binary --locked \
    --root "$root" --target-dir "$root/target" >"$root/build.log" 2>&1 \
    || { tail -n 30 "$root/build.log" >&2; die "s3s-fs build failed; see $root/build.log"; }
  rm -rf "$root/target"
  log "s3s-fs $S3S_FS_VERSION built in $((SECONDS - start))s -> $root/bin"
}

targets=("$@")
((${#targets[@]})) || targets=(all)
for t in "${targets[@]}"; do
  case $t in
    all) build_etcd; build_kwok; build_helm; build_crane; build_k8s ;;
    k8s | kubernetes) build_k8s ;;
    etcd) build_etcd ;;
    helm) build_helm ;;
    kwok) build_kwok ;;
    crane) build_crane ;;
    coredns) build_coredns ;;
    prometheus) build_prometheus ;;
    images) build_images ;;
    provisioner) build_own provisioner ;;
    debian) build_debian ;;
    s3) build_s3 ;;
    root:debian) echo "$CACHE/debian/$DEBIAN_SUITE-$DEBIAN_PACKAGES-$DEBIAN_RECIPE" ;;
    node) build_coredns; build_images ;;
    root:*) own_root "${t#root:}" ;; # prints where that program is cached
    *) die "unknown target $t (all|k8s|etcd|helm|kwok|crane|coredns|prometheus|images|provisioner|node|debian|s3)" ;;
  esac
done
