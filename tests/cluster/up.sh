#!/usr/bin/env bash
# Start a throwaway Kubernetes control plane on loopback for tests:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, and kwok
#   (fake kubelets) with fake Nodes, so Deployments get Running pods without
#   containers.
#
#   eval "$(tests/cluster/up.sh)"     # exports KUBECONFIG, PATH, KONTINUUM_CLUSTER_DIR,
#                                     # KONTINUUM_S3_* (the S3-compatible store)
#   ...
#   tests/cluster/down.sh             # stops it (uses $KONTINUUM_CLUSTER_DIR)
#
# stdout carries ONLY the export lines (so eval is safe); progress goes to
# stderr and every daemon logs to <cluster dir>/logs/. Each run gets its own
# temporary directory and free ports, so several clusters can run at once.
#
# Environment:
#   KONTINUUM_FAKE_NODES   number of fake nodes (default 2)
#   KONTINUUM_REAL_NODE    1: also a real node (containerd, kubelet, kube-proxy,
#                          CoreDNS); needs root; one per machine (node.sh)
#   KONTINUUM_CACHE        binary cache (default ~/.cache/kontinuum)
#   TMPDIR                 where the cluster directory is made (default /tmp)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
# shellcheck source=lib.sh
source "$here/lib.sh"

CACHE=${KONTINUUM_CACHE:-$HOME/.cache/kontinuum}
NODES=${KONTINUUM_FAKE_NODES:-2}
REAL_NODE=${KONTINUUM_REAL_NODE:-0}
[[ $REAL_NODE == 0 || $REAL_NODE == 1 ]] || die "KONTINUUM_REAL_NODE must be 0 or 1, got '$REAL_NODE'"

for tool in openssl curl flock ss; do
  command -v "$tool" >/dev/null || die "$tool is not installed (see .ci/run for the packages)"
done

# Build on first use (a no-op when the cache has everything).
"$here/build.sh" all provisioner s3
PROVISIONER_BIN=$("$here/build.sh" root:provisioner)/bin
S3_BIN=$CACHE/s3s-fs/$S3S_FS_VERSION/bin
if [[ $REAL_NODE == 1 ]]; then
  "$here/build.sh" node
  COREDNS_BIN=$CACHE/coredns/$COREDNS_VERSION/bin
  IMAGES_DIR=$("$here/build.sh" root:testimage)
fi

K8S_BIN=$CACHE/k8s/$KUBERNETES_VERSION/bin
ETCD_BIN=$CACHE/etcd/$ETCD_VERSION/bin
HELM_BIN=$CACHE/helm/$HELM_VERSION/bin
KWOK_BIN=$CACHE/kwok/$KWOK_VERSION/bin

dir=$(mktemp -d "${TMPDIR:-/tmp}/kontinuum-cluster.XXXXXX")
mkdir -p "$dir"/{pki,logs,run,bin,etcd,kcm,scheduler}
ok=false
# On any failure, show the logs' tails and stop whatever was started.
on_exit() {
  if ! $ok; then
    log "startup failed; last lines of the logs in $dir/logs:"
    for f in "$dir"/logs/*.log; do
      [[ -f $f ]] || continue
      printf '==> %s <==\n' "$f" >&2
      tail -n 20 "$f" >&2
    done
    "$here/down.sh" "$dir" >&2 || true
  fi
}
trap on_exit EXIT

log "cluster dir: $dir (Kubernetes $KUBERNETES_VERSION, etcd $ETCD_VERSION, kwok $KWOK_VERSION)"

# The real node first checks the host and takes the machine's one real-node
# lock, so a second one fails here, in a second, with the owner's name.
NODE_IP=
if [[ $REAL_NODE == 1 ]]; then
  # shellcheck source=node.sh
  source "$here/node.sh"
  node_preflight
  node_claim
fi

# kubectl and helm of the pinned versions, for the caller's PATH.
ln -s "$K8S_BIN/kubectl" "$dir/bin/kubectl"
ln -s "$HELM_BIN/helm" "$dir/bin/helm"
ln -s "$KWOK_BIN/kwok" "$dir/bin/kwok"

# ---------------------------------------------------------------------------
# Ports: reserved atomically across concurrent up.sh runs (see lib.sh).
etcd_port=$(reserve_port "$dir")
etcd_peer_port=$(reserve_port "$dir")
api_port=$(reserve_port "$dir")
kcm_port=$(reserve_port "$dir")
sched_port=$(reserve_port "$dir")
kwok_port=$(reserve_port "$dir")
printf '%s\n' "$etcd_port" "$etcd_peer_port" "$api_port" "$kcm_port" "$sched_port" "$kwok_port" >"$dir/run/ports"

# ---------------------------------------------------------------------------
# PKI. One CA signs the API server's serving cert (for 127.0.0.1) and the
# client certs; client identity = CN (user) and O (group). EC P-256 keys are
# quick to make and every client here (Go, rustls) accepts them.
pki=$dir/pki
log "generating certificates"
openssl_quiet() { openssl "$@" 2>>"$dir/logs/openssl.log"; }
openssl_quiet req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3 \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" -subj "/CN=kontinuum-test-ca" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# issue NAME SUBJECT EXTKEYUSAGE [SAN]
issue() {
  local name=$1 subj=$2 eku=$3 san=${4:-}
  local ext=$pki/$name.ext
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [[ -n $san ]] && echo "subjectAltName=$san"
  } >"$ext"
  openssl_quiet req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$pki/$name.key" -out "$pki/$name.csr" -subj "$subj"
  openssl_quiet x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
    -CAcreateserial -days 3 -out "$pki/$name.crt" -extfile "$ext"
}
# 10.0.0.1 is the in-cluster `kubernetes` Service IP (first of the service range).
issue apiserver "/CN=kube-apiserver" serverAuth \
  "IP:127.0.0.1,IP:10.0.0.1${NODE_IP:+,IP:$NODE_IP},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc"
issue admin "/O=system:masters/CN=kontinuum-admin" clientAuth
# Controller-manager and scheduler use their real identities, so they run
# under the bootstrap RBAC roles as in a production cluster.
issue kcm "/CN=system:kube-controller-manager" clientAuth
issue scheduler "/CN=system:kube-scheduler" clientAuth
issue kwok "/O=system:masters/CN=kwok" clientAuth
issue provisioner "/O=system:masters/CN=kontinuum-provisioner" clientAuth
# Service-account token signing key pair (API server signs, verifies; the
# controller-manager signs the legacy tokens it mints).
openssl_quiet genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key"
openssl_quiet pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"

# write_kubeconfig FILE CERTNAME: a self-contained kubeconfig (certs embedded).
write_kubeconfig() {
  local file=$1 who=$2
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kontinuum-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: $who
  user:
    client-certificate-data: $(base64 -w0 <"$pki/$who.crt")
    client-key-data: $(base64 -w0 <"$pki/$who.key")
contexts:
- name: kontinuum-test
  context: {cluster: kontinuum-test, user: $who}
current-context: kontinuum-test
EOF
  chmod 600 "$file"
}
write_kubeconfig "$dir/kubeconfig" admin
write_kubeconfig "$dir/kcm.kubeconfig" kcm
write_kubeconfig "$dir/scheduler.kubeconfig" scheduler
write_kubeconfig "$dir/kwok.kubeconfig" kwok
write_kubeconfig "$dir/provisioner.kubeconfig" provisioner
[[ $REAL_NODE == 1 ]] && node_certs

# ---------------------------------------------------------------------------
log "starting etcd on 127.0.0.1:$etcd_port"
# --unsafe-no-fsync: the data is thrown away after the tests; fsync only slows them.
start_daemon "$dir" etcd "$ETCD_BIN/etcd" \
  --name=kontinuum-test \
  --data-dir="$dir/etcd" \
  --listen-client-urls="http://127.0.0.1:$etcd_port" \
  --advertise-client-urls="http://127.0.0.1:$etcd_port" \
  --listen-peer-urls="http://127.0.0.1:$etcd_peer_port" \
  --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster="kontinuum-test=http://127.0.0.1:$etcd_peer_port" \
  --unsafe-no-fsync \
  --log-level=warn
wait_until "etcd" 60 "$dir" etcd \
  curl -fsS "http://127.0.0.1:$etcd_port/health"

log "starting kube-apiserver on https://127.0.0.1:$api_port"
# With the real node, pods reach the API server through the `kubernetes`
# Service: it listens on the node IP too, advertises it (the default lease
# reconciler publishes it as the Service's endpoint), and has a client
# certificate for kubelet's API (logs, exec).
api_node_flags=()
if [[ $REAL_NODE == 1 ]]; then
  api_node_flags=(
    --bind-address=0.0.0.0
    --advertise-address="$NODE_IP"
    --endpoint-reconciler-type=lease
    --kubelet-client-certificate="$pki/apiserver-kubelet.crt"
    --kubelet-client-key="$pki/apiserver-kubelet.key"
    --kubelet-preferred-address-types=InternalIP
  )
fi
# Node,RBAC: kubelets (the real node's) are authorized by the Node authorizer.
# --endpoint-reconciler-type=none: the default reconciler writes the advertise
# address into the `kubernetes` Endpoints and refuses loopback addresses.
start_daemon "$dir" kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers="http://127.0.0.1:$etcd_port" \
  --bind-address=127.0.0.1 \
  --advertise-address=127.0.0.1 \
  --secure-port="$api_port" \
  --cert-dir="$dir/pki/apiserver-generated" \
  --tls-cert-file="$pki/apiserver.crt" \
  --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --authorization-mode=Node,RBAC \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --endpoint-reconciler-type=none \
  --allow-privileged=true \
  --profiling=false \
  "${api_node_flags[@]}"
api_curl() {
  curl -fsS --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
    "https://127.0.0.1:$api_port$1"
}
wait_until "kube-apiserver /readyz" 120 "$dir" kube-apiserver api_curl /readyz

log "starting kube-controller-manager and kube-scheduler"
# --use-service-account-credentials: each controller acts as its own
# ServiceAccount under the bootstrap system:controller:* roles.
# --cert-dir: they generate self-signed serving certs; keep them in our dir.
start_daemon "$dir" kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig="$dir/kcm.kubeconfig" \
  --authentication-kubeconfig="$dir/kcm.kubeconfig" \
  --authorization-kubeconfig="$dir/kcm.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$kcm_port" \
  --cert-dir="$dir/kcm" \
  --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --cluster-signing-cert-file="$pki/ca.crt" \
  --cluster-signing-key-file="$pki/ca.key" \
  --profiling=false
start_daemon "$dir" kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig="$dir/scheduler.kubeconfig" \
  --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
  --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
  --bind-address=127.0.0.1 \
  --secure-port="$sched_port" \
  --cert-dir="$dir/scheduler" \
  --leader-elect=false \
  --profiling=false
# /healthz of both is open to anonymous requests by default
# (--authorization-always-allow-paths); -k: their certs are self-signed.
wait_until "kube-controller-manager /healthz" 60 "$dir" kube-controller-manager \
  curl -fsSk "https://127.0.0.1:$kcm_port/healthz"
wait_until "kube-scheduler /healthz" 60 "$dir" kube-scheduler \
  curl -fsSk "https://127.0.0.1:$sched_port/healthz"

log "starting kwok with $NODES fake node(s)"
# kwok plays the kubelet of every Node annotated kwok.x-k8s.io/node=fake:
# it marks them Ready, heartbeats their leases, and moves their pods to
# Running (no image is pulled, no container runs).
# The config holds only the lifecycle Stages (made by build.sh from kwok's
# own defaults): without a KwokConfiguration document kwok applies its
# defaults, and flags set the rest. Naming a file also keeps a developer's
# ~/.kwok/kwok.yaml out of it.
cp "$CACHE/kwok/$KWOK_VERSION/stages.yaml" "$dir/kwok.yaml"
start_daemon "$dir" kwok "$KWOK_BIN/kwok" \
  --config="$dir/kwok.yaml" \
  --kubeconfig="$dir/kwok.kubeconfig" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr=10.244.0.1/16 \
  --node-ip=127.0.0.1 \
  --node-lease-duration-seconds=40 \
  --server-address="127.0.0.1:$kwok_port"
wait_until "kwok /healthz" 60 "$dir" kwok \
  curl -fsS "http://127.0.0.1:$kwok_port/healthz"

# Fake nodes: no taint, so ordinary workloads (the operator's chart, worker
# Deployments) schedule on them without tolerations.
export KUBECONFIG=$dir/kubeconfig
kubectl_() { "$K8S_BIN/kubectl" "$@"; }
for i in $(seq 0 $((NODES - 1))); do
  kubectl_ apply -f - >>"$dir/logs/setup.log" 2>&1 <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    node-role.kubernetes.io/agent: ""
    type: kwok
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "110"}
  capacity: {cpu: "32", memory: 256Gi, pods: "110"}
EOF
done
wait_until "$NODES Ready node(s)" 60 "$dir" kwok \
  kubectl_ wait --for=condition=Ready node --all --timeout=5s
# Pods are refused in a namespace until its default ServiceAccount exists.
wait_until "the default ServiceAccount" 60 "$dir" kube-controller-manager \
  kubectl_ get serviceaccount default -n default

# Storage, as real clusters have it: a default StorageClass whose provisioner
# (ours, a host process; see provisioner/main.go) makes a host directory and
# a bound hostPath PV for each claim, on kwok and the real node alike.
log "starting the storage provisioner (default StorageClass \"standard\")"
start_daemon "$dir" provisioner "$PROVISIONER_BIN/provisioner" \
  --kubeconfig="$dir/provisioner.kubeconfig" \
  --dir="$dir/volumes" \
  --name=kontinuum.dev/hostpath
kubectl_ apply -f - >>"$dir/logs/setup.log" 2>&1 <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kontinuum.dev/hostpath
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF

# An S3-compatible store (s3s-fs): buckets are the directories of
# $dir/s3. It listens where the pods of the real node reach host processes
# (the node's address), else on loopback; one key pair, made here.
s3_host=${NODE_IP:-127.0.0.1}
s3_port=$(reserve_port "$dir")
s3_access_key=kontinuum-test
s3_secret_key=$(openssl rand -hex 20)
mkdir -p "$dir/s3"
log "starting the S3-compatible store (s3s-fs) on $s3_host:$s3_port"
start_daemon "$dir" s3 "$S3_BIN/s3s-fs" --host "$s3_host" --port "$s3_port" \
  --access-key "$s3_access_key" --secret-key "$s3_secret_key" "$dir/s3"
wait_until "the S3 store on $s3_host:$s3_port" 30 "$dir" s3 \
  curl -s -o /dev/null "http://$s3_host:$s3_port/"

[[ $REAL_NODE == 1 ]] && node_up

ok=true
log "cluster is up ($((SECONDS))s). Stop it with: tests/cluster/down.sh $dir"
printf 'export KONTINUUM_CLUSTER_DIR=%q\n' "$dir"
printf 'export KUBECONFIG=%q\n' "$dir/kubeconfig"
printf 'export PATH=%q:"$PATH"\n' "$dir/bin"
printf 'export KONTINUUM_S3_ENDPOINT=%q\n' "http://$s3_host:$s3_port"
printf 'export KONTINUUM_S3_ACCESS_KEY=%q\n' "$s3_access_key"
printf 'export KONTINUUM_S3_SECRET_KEY=%q\n' "$s3_secret_key"
printf 'export KONTINUUM_S3_DIR=%q\n' "$dir/s3"
if [[ $REAL_NODE == 1 ]]; then
  printf 'export KONTINUUM_REAL_NODE=1\n'
else
  # A shell that had a real-node cluster before must not claim one now.
  printf 'unset KONTINUUM_REAL_NODE\n'
fi
