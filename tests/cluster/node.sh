# The real node of the test cluster (KONTINUUM_REAL_NODE=1): containerd +
# runc, the bridge CNI plugin, kubelet, kube-proxy (nftables) and CoreDNS as
# the cluster DNS, all host processes of the cluster directory. Sourced by
# up.sh (node_* start functions) and down.sh (node_down); docs/testing.md
# explains every setting.
#
# The node uses host-wide names (cgroup root, bridge, nftables tables), so
# one real node runs on a machine at a time: NODE_LOCK is held (flock) by the
# cluster's daemons, which inherit its descriptor, and is free again once
# down.sh has stopped them.

NODE_NAME=kontinuum-real-node
NODE_LOCK=/tmp/kontinuum-real-node.lock
NODE_LOCK_FD=19
NODE_SETUP_LOCK=/tmp/kontinuum-real-node.setup.lock
NODE_SETUP_FD=18
# kwok gives its fake pods addresses from 10.244.0.0/16; the real node's pods
# get theirs from a range of their own.
NODE_POD_CIDR=10.245.0.0/24
NODE_POD_GATEWAY=10.245.0.1
NODE_BRIDGE=kontinuum0
NODE_CGROUP_ROOT=/kontinuum
SERVICE_CIDR=10.0.0.0/24
DNS_SERVICE_IP=10.0.0.10
NODE_TAINT_KEY=kontinuum.dev/real-node
# Sysctls kubelet (protectKernelDefaults: false) and the bridge plugin
# (ip_forward) write; recorded at start and restored by node_down.
NODE_SYSCTLS=(net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic
  kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Paths outside the cluster dir that kubelet, containerd's shims and CNI
# create whatever they are told (kubelet's device-plugin socket dir and
# container log links, libcni's result cache, the shims' sockets), children
# after parents; node_down removes those that were not there before.
NODE_HOST_PATHS=(/var/lib/kubelet /var/lib/kubelet/device-plugins /var/log/containers
  /var/lib/cni /var/lib/cni/results /run/containerd /run/containerd/s)
# nftables tables the node may create: kube-proxy's, our guard, and those
# iptables-nft makes for kubelet's canary chains. node_down deletes the ones
# that did not exist before the node started.
NODE_NFT_TABLES=("ip kube-proxy" "ip6 kube-proxy" "ip kontinuum-guard" "ip filter" "ip nat"
  "ip mangle" "ip6 filter" "ip6 nat" "ip6 mangle")

# node_preflight: root, the Debian packages (installed when missing), the
# node IP. Fails with the reason; never falls back to a cluster without the
# node, since the caller asked for one.
node_preflight() {
  [[ $EUID -eq 0 ]] || die "the real node needs root (containerd, network namespaces, cgroups); run as root or without KONTINUUM_REAL_NODE"
  local need=() pair
  for pair in containerd:containerd ctr:containerd runc:runc nft:nftables iptables:iptables ip:iproute2; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] \
    || need+=(containernetworking-plugins)
  if ((${#need[@]})); then
    command -v apt-get >/dev/null || die "missing packages ${need[*]} and no apt-get to install them"
    log "installing Debian packages: ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
      >>"$dir/logs/setup.log" 2>&1 \
      || { apt-get update -qq >>"$dir/logs/setup.log" 2>&1 \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" \
          >>"$dir/logs/setup.log" 2>&1; } \
      || die "apt-get install ${need[*]} failed (log: $dir/logs/setup.log)"
  fi
  local c
  for c in cpu cpuacct cpuset memory pids; do
    [[ -d /sys/fs/cgroup/$c || -f /sys/fs/cgroup/cgroup.controllers ]] \
      || die "cgroup controller $c is not mounted under /sys/fs/cgroup"
  done
  # The node's address: the one the default route leaves from. Pods reach
  # the API server and CoreDNS there (host processes), so it must be local.
  local dev
  dev=$(ip -4 route show default | awk '{for (i = 1; i < NF; i++) if ($i == "dev") {print $(i + 1); exit}}')
  [[ -n $dev ]] || die "no IPv4 default route: the real node needs a host address for its pods to reach"
  NODE_IP=$(ip -4 -o addr show dev "$dev" scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')
  NODE_DEV=$dev
  [[ -n $NODE_IP ]] || die "interface $dev has no IPv4 address"
}

# node_claim: one real node per machine, and no start while another node's
# stop is still cleaning up. Two locks: NODE_LOCK is held by the node's
# daemons (they inherit its descriptor), so it is free once they are gone;
# NODE_SETUP_LOCK is held only around a start's claim and a whole stop
# (down.sh), so a new node never sees, nor records as "before", what an old
# one has not yet cleaned. KONTINUUM_REAL_NODE_WAIT (seconds, default 0)
# waits for another node to go instead of failing.
node_claim() {
  local wait=${KONTINUUM_REAL_NODE_WAIT:-0} start=$SECONDS owner announced=
  while :; do
    eval "exec $NODE_SETUP_FD>>\"$NODE_SETUP_LOCK\""
    flock -w 120 "$NODE_SETUP_FD" || die "$NODE_SETUP_LOCK stayed locked for 2 min (a down.sh stuck?)"
    eval "exec $NODE_LOCK_FD>>\"$NODE_LOCK\""
    flock -n "$NODE_LOCK_FD" && break
    eval "exec $NODE_LOCK_FD>&- $NODE_SETUP_FD>&-"
    owner=$(cat "$NODE_LOCK.owner" 2>/dev/null || echo unknown)
    if ((SECONDS - start >= wait)); then
      die "a real node already runs on this machine (cluster $owner): one real node per machine; stop it with tests/cluster/down.sh $owner, or set KONTINUUM_REAL_NODE_WAIT=SECONDS to wait"
    fi
    [[ -n $announced ]] || log "the real node is in use by cluster $owner; waiting up to ${wait}s for it"
    announced=1
    sleep 2
  done
  node_sweep_stale
  echo "$dir" >"$NODE_LOCK.owner"
  mkdir -p "$dir/node" && : >"$dir/node/locked"
  node_record_host
  # The setup lock must not live on in the daemons.
  eval "flock -u $NODE_SETUP_FD; exec $NODE_SETUP_FD>&-"
}

# node_sweep_stale (holding both locks): a node whose processes were killed
# without down.sh (a session's processes ended, a kill -9 of the tree) frees
# NODE_LOCK but leaves its bridge, nftables tables, sysctls, mounts and
# cgroups. Recorded as this node's "before", they would make this node's
# down.sh fail (it removes the bridge, kube-proxy rewrites its table). The
# dead node's dir still says what it made (node/locked and its own
# "before"): its down.sh undoes that, with the setup lock we hold. Without
# that dir, only the names that are certainly a node's go.
node_sweep_stale() {
  local owner t
  owner=$(cat "$NODE_LOCK.owner" 2>/dev/null || true)
  if [[ -n $owner && $owner != "$dir" && -f $owner/node/locked ]]; then
    log "cluster $owner ended without tests/cluster/down.sh; stopping what is left of it"
    KONTINUUM_NODE_SETUP_HELD=1 "$here/down.sh" "$owner" \
      || log "down.sh $owner did not leave the host as it was (its node/host-state.diff says how); going on"
  elif [[ -e /sys/class/net/$NODE_BRIDGE ]]; then
    log "bridge $NODE_BRIDGE is left from a real node whose cluster dir is gone; removing it and kube-proxy's and the guard's tables"
    ip link del "$NODE_BRIDGE" 2>/dev/null || true
    for t in "ip kube-proxy" "ip6 kube-proxy" "ip kontinuum-guard"; do
      # shellcheck disable=SC2086  # "family name"
      nft delete table $t 2>/dev/null || true
    done
  fi
  rm -f "$NODE_LOCK.owner"
}

# node_record_host: what node_down must restore, and the host's state to
# compare with once the node is gone.
node_record_host() {
  local n=$dir/node k
  for k in "${NODE_SYSCTLS[@]}"; do
    printf '%s=%s\n' "$k" "$(sysctl -n "$k")"
  done >"$n/sysctls.before"
  local t
  for t in "${NODE_NFT_TABLES[@]}"; do
    # shellcheck disable=SC2086  # "family name"
    nft list table $t >/dev/null 2>&1 && echo "$t"
  done >"$n/nft-tables.before" || true
  for t in "${NODE_HOST_PATHS[@]}"; do
    [[ -e $t ]] && echo "$t"
  done >"$n/paths.before" || true
  "$here/host-state.sh" >"$n/host-state.before"
}

node_certs() {
  issue kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
  issue kube-proxy "/CN=system:kube-proxy" clientAuth
  # The API server's identity towards kubelets (logs, exec, port-forward).
  issue apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
  issue coredns "/O=system:masters/CN=kontinuum-coredns" clientAuth
  write_kubeconfig "$dir/kubelet.kubeconfig" kubelet
  write_kubeconfig "$dir/kube-proxy.kubeconfig" kube-proxy
  write_kubeconfig "$dir/coredns.kubeconfig" coredns
}

# node_guard: nothing of the node's may leave the machine. Packets to the
# service range, the pod ranges (the real node's and kwok's fake one, whose
# addresses no host has) or from the pods are dropped on the way out of the
# default interface, so a Service whose endpoints are fake pods cannot send
# traffic to the network.
node_guard() {
  nft -f - <<EOF
table ip kontinuum-guard {
  chain postrouting {
    type filter hook postrouting priority 200; policy accept;
    oifname "$NODE_DEV" ip daddr { $SERVICE_CIDR, 10.244.0.0/16, $NODE_POD_CIDR } drop
    oifname "$NODE_DEV" ip saddr $NODE_POD_CIDR drop
  }
}
EOF
}

node_containerd() {
  local n=$dir/node
  mkdir -p "$n/containerd" "$n/containerd-state" "$n/runc" "$n/opt" "$n/cni/net.d" "$n/cni/ipam"
  cat >"$n/containerd.toml" <<EOF
version = 2
root = "$n/containerd"
state = "$n/containerd-state"
# Snapshotters other than overlayfs are not used; aufs, btrfs, devmapper and
# zfs would only probe the host.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]

[grpc]
  address = "$n/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "$n/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # Root here lacks CAP_SYS_RESOURCE: a container asking for a negative
  # oom_score_adj (the sandbox asks for -998) would fail to start.
  restrict_oom_score_adj = true
  # Network namespaces under our state dir, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        # runc's state under the cluster dir instead of /run/containerd/runc.
        Root = "$n/runc"
EOF
  # One bridge on the host, pods on a /24 of their own; no IP masquerade:
  # pods talk only to this host and to each other.
  cat >"$n/cni/net.d/10-kontinuum.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "kontinuum",
  "plugins": [{
    "type": "bridge",
    "bridge": "$NODE_BRIDGE",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": "$NODE_POD_CIDR", "gateway": "$NODE_POD_GATEWAY"}]],
      "routes": [{"dst": "0.0.0.0/0"}],
      "dataDir": "$n/cni/ipam"
    }
  }]
}
EOF
  log "starting containerd"
  start_daemon "$dir" containerd containerd --config "$n/containerd.toml"
  wait_until "containerd" 60 "$dir" containerd ctr -a "$n/containerd.sock" version
}

# node_import ARCHIVE: an OCI archive into the node's containerd (k8s.io is
# the namespace the CRI plugin serves to kubelet).
node_import() {
  ctr -a "$dir/node/containerd.sock" -n k8s.io images import "$1" >>"$dir/logs/setup.log" 2>&1 \
    || die "cannot import $1 into the node's containerd (log: $dir/logs/setup.log)"
}

node_kubelet() {
  local n=$dir/node kubelet_port healthz_port
  kubelet_port=$(reserve_port "$dir")
  healthz_port=$(reserve_port "$dir")
  mkdir -p "$n/kubelet" "$n/pod-logs"
  cat >"$n/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $healthz_port
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: AlwaysAllow}
containerRuntimeEndpoint: unix://$n/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $NODE_CGROUP_ROOT
failCgroupV1: false
failSwapOn: false
oomScoreAdj: 0
clusterDomain: cluster.local
clusterDNS: [$DNS_SERVICE_IP]
resolvConf: ""
registerWithTaints:
- {key: $NODE_TAINT_KEY, value: "true", effect: NoSchedule}
podLogsDir: $n/pod-logs
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
shutdownGracePeriod: 0s
serializeImagePulls: false
rotateCertificates: false
EOF
  # kubelet refuses a cgroupRoot that does not exist; a new cpuset cgroup
  # has no CPUs or memory nodes until given its parent's.
  local cg
  for cg in /sys/fs/cgroup/*/; do
    [[ -f $cg/cgroup.procs ]] || continue
    mkdir -p "$cg${NODE_CGROUP_ROOT#/}"
  done
  if [[ -f /sys/fs/cgroup/cpuset/cpuset.cpus ]]; then
    cat /sys/fs/cgroup/cpuset/cpuset.cpus >"/sys/fs/cgroup/cpuset$NODE_CGROUP_ROOT/cpuset.cpus"
    cat /sys/fs/cgroup/cpuset/cpuset.mems >"/sys/fs/cgroup/cpuset$NODE_CGROUP_ROOT/cpuset.mems"
  fi
  log "starting kubelet ($NODE_NAME at $NODE_IP:$kubelet_port)"
  start_daemon "$dir" kubelet "$K8S_BIN/kubelet" \
    --config="$n/kubelet.yaml" \
    --kubeconfig="$dir/kubelet.kubeconfig" \
    --root-dir="$n/kubelet" \
    --cert-dir="$n/kubelet/pki" \
    --hostname-override="$NODE_NAME" \
    --node-ip="$NODE_IP" \
    --node-labels="$NODE_TAINT_KEY=true"
  wait_until "kubelet /healthz" 60 "$dir" kubelet curl -fsS "http://127.0.0.1:$healthz_port/healthz"
  wait_until "node $NODE_NAME Ready" 90 "$dir" kubelet \
    kubectl_ wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
}

node_kube_proxy() {
  local n=$dir/node healthz_port metrics_port
  healthz_port=$(reserve_port "$dir")
  metrics_port=$(reserve_port "$dir")
  # conntrack zeros and oomScoreAdj 0: leave the host's settings alone.
  cat >"$n/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: nftables
hostnameOverride: $NODE_NAME
clientConnection: {kubeconfig: $dir/kube-proxy.kubeconfig}
clusterCIDR: $NODE_POD_CIDR
healthzBindAddress: 127.0.0.1:$healthz_port
metricsBindAddress: 127.0.0.1:$metrics_port
oomScoreAdj: 0
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  log "starting kube-proxy (nftables)"
  start_daemon "$dir" kube-proxy "$K8S_BIN/kube-proxy" --config="$n/kube-proxy.yaml"
  wait_until "kube-proxy /healthz" 60 "$dir" kube-proxy curl -fsS "http://127.0.0.1:$healthz_port/healthz"
}

# node_dns: CoreDNS on the node IP at a free port, and the kube-dns Service
# at DNS_SERVICE_IP:53 whose one endpoint is that port (kube-proxy forwards).
node_dns() {
  local n=$dir/node port ready_port
  port=$(reserve_port "$dir")
  ready_port=$(reserve_port "$dir")
  # No `forward`: pods resolve cluster names only; the machine has no other
  # network to resolve names of.
  cat >"$n/Corefile" <<EOF
.:$port {
    bind $NODE_IP
    errors
    ready 127.0.0.1:$ready_port
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $dir/coredns.kubeconfig kontinuum-test
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 5
}
EOF
  log "starting CoreDNS on $NODE_IP:$port (Service kube-system/kube-dns at $DNS_SERVICE_IP)"
  start_daemon "$dir" coredns "$COREDNS_BIN/coredns" -conf "$n/Corefile"
  kubectl_ apply -f - >>"$dir/logs/setup.log" 2>&1 <<EOF
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $DNS_SERVICE_IP
  ports:
  - {name: dns, port: 53, targetPort: $port, protocol: UDP}
  - {name: dns-tcp, port: 53, targetPort: $port, protocol: TCP}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kube-dns-host
  namespace: kube-system
  labels:
    kubernetes.io/service-name: kube-dns
    endpointslice.kubernetes.io/managed-by: kontinuum-test-cluster
addressType: IPv4
endpoints:
- addresses: [$NODE_IP]
  conditions: {ready: true}
ports:
- {name: dns, port: $port, protocol: UDP}
- {name: dns-tcp, port: $port, protocol: TCP}
EOF
  wait_until "CoreDNS /ready" 60 "$dir" coredns curl -fsS "http://127.0.0.1:$ready_port/ready"
}

node_up() {
  node_guard
  node_containerd
  node_import "$IMAGES_DIR/pause.oci.tar"
  node_import "$IMAGES_DIR/testimage.oci.tar"
  node_kubelet
  node_kube_proxy
  node_dns
}

# ---------------------------------------------------------------------------
# Stopping (down.sh; `dir`, `ours` and `stop_daemons` come from there). Every
# step also works after a failed start or a crashed daemon, and touches only
# what this cluster's node made: host-wide names are ours because the node
# lock was ours (node/locked), paths are under the cluster dir.

node_down() {
  local n=$dir/node
  [[ -f $n/locked ]] || return 0
  # Held until down.sh exits: no new node starts before this one is clean.
  # A starting node that sweeps up after a dead one holds it already.
  if [[ -z ${KONTINUUM_NODE_SETUP_HELD:-} ]]; then
    eval "exec $NODE_SETUP_FD>>\"$NODE_SETUP_LOCK\""
    flock -w 120 "$NODE_SETUP_FD" || log "$NODE_SETUP_LOCK stayed locked for 2 min; going on"
  fi
  # Nothing may recreate or reschedule pods while the node empties.
  stop_daemons kwok kube-scheduler kube-controller-manager
  node_drain
  stop_daemons coredns kube-proxy kubelet
  stop_daemons containerd
  node_kill_leftovers
  node_unmount
  [[ -e /sys/class/net/$NODE_BRIDGE ]] && ip link del "$NODE_BRIDGE"
  node_restore_netfilter
  node_restore_sysctls
  node_remove_paths
  [[ $(cat "$NODE_LOCK.owner" 2>/dev/null) == "$dir" ]] && rm -f "$NODE_LOCK.owner"
  rm -f "$n/locked"
  # The proof: the host as it was before the node started.
  if "$here/host-state.sh" >"$n/host-state.after" \
    && diff -u "$n/host-state.before" "$n/host-state.after" >"$n/host-state.diff"; then
    log "real node stopped; the host is as it was before (tests/cluster/host-state.sh)"
    return 0
  fi
  log "real node stopped, but the host differs from before it started:"
  cat "$n/host-state.diff" >&2
  NODE_LEFT_STATE=1
}

# node_drain: delete the node's pods and wait until kubelet has torn them
# down (containers stopped, CNI DEL run, volumes unmounted, pods gone).
node_drain() {
  ours kubelet >/dev/null && ours kube-apiserver >/dev/null || return 0
  local kc=("$dir/bin/kubectl" --kubeconfig "$dir/kubeconfig") i
  "${kc[@]}" delete pods -A --field-selector "spec.nodeName=$NODE_NAME" \
    --grace-period=1 --wait=false >>"$dir/logs/setup.log" 2>&1 || return 0
  for ((i = 0; i < 150; i++)); do
    [[ -z $("${kc[@]}" get pods -A --field-selector "spec.nodeName=$NODE_NAME" -o name 2>/dev/null) ]] && return 0
    sleep 0.2
  done
  log "pods on $NODE_NAME did not go within 30 s; cleaning up by hand"
}

# node_kill_leftovers: what a crash left running. Processes in the node's
# cgroups are the node's containers; shims are found through the pid files
# containerd wrote in our state dir and checked against our socket path.
node_kill_leftovers() {
  local n=$dir/node f pid cg i
  for ((i = 0; i < 10; i++)); do
    local procs=()
    for cg in /sys/fs/cgroup/*"$NODE_CGROUP_ROOT"; do
      [[ -d $cg ]] || continue
      while IFS= read -r pid; do procs+=("$pid"); done < <(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)
    done
    ((${#procs[@]})) || break
    kill -KILL "${procs[@]}" 2>/dev/null || true
    sleep 0.2
  done
  for f in "$n"/containerd-state/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$n/containerd.sock"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  # Empty cgroups go bottom-up; a cgroup just emptied may need a moment.
  for ((i = 0; i < 10; i++)); do
    local left=0
    for cg in /sys/fs/cgroup/*"$NODE_CGROUP_ROOT"; do
      [[ -d $cg ]] || continue
      find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || left=1
    done
    ((left)) || break
    sleep 0.2
  done
}

# node_unmount: anything still mounted under the cluster dir (rootfs
# overlays, sandbox shm, network namespaces, kubelet's volumes), deepest
# first; lazily if busy.
node_unmount() {
  local m
  while IFS= read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
  done < <(awk -v d="$dir/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r)
}

node_restore_netfilter() {
  local t before=$dir/node/nft-tables.before
  for t in "${NODE_NFT_TABLES[@]}"; do
    grep -qxF "$t" "$before" 2>/dev/null && continue
    # shellcheck disable=SC2086  # "family name"
    nft delete table $t 2>/dev/null || true
  done
  # Tables that were there before keep everything but kubelet's canaries.
  local fam tab chain
  for fam in ip ip6; do
    for tab in mangle nat filter; do
      grep -qxF "$fam $tab" "$before" 2>/dev/null || continue
      for chain in KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
        nft delete chain "$fam" "$tab" "$chain" 2>/dev/null || true
      done
    done
  done
}

node_restore_sysctls() {
  local line k v
  while IFS= read -r line; do
    k=${line%%=*} v=${line#*=}
    [[ $(sysctl -n "$k" 2>/dev/null) == "$v" ]] || sysctl -qw "$k=$v" || log "cannot restore $k=$v"
  done <"$dir/node/sysctls.before"
}

# node_remove_paths: the few things kubelet and containerd put outside the
# cluster dir: kubelet's /var/log/containers links, the shims' sockets in
# /run/containerd/s, and those directories when they were not there before.
node_remove_paths() {
  local n=$dir/node f addr before=$dir/node/paths.before
  for f in "$n"/containerd-state/io.containerd.runtime.v2.task/*/*/address; do
    [[ -f $f ]] || continue
    addr=$(cat "$f")
    addr=${addr#unix://}
    [[ $addr == /run/containerd/s/* ]] && rm -f "$addr"
  done
  if [[ -d /var/log/containers ]]; then
    for f in /var/log/containers/*; do
      [[ -L $f && $(readlink "$f") == "$n/"* ]] && rm -f "$f"
    done
  fi
  # The device manager's socket: kubelet's own, in a directory it cannot be
  # told to move. Left alone if that directory was there before.
  grep -qxF /var/lib/kubelet/device-plugins "$before" 2>/dev/null \
    || rm -f /var/lib/kubelet/device-plugins/kubelet.sock
  local i
  for ((i = ${#NODE_HOST_PATHS[@]} - 1; i >= 0; i--)); do
    f=${NODE_HOST_PATHS[i]}
    grep -qxF "$f" "$before" 2>/dev/null || rmdir "$f" 2>/dev/null || true
  done
}
