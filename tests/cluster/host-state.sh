#!/usr/bin/env bash
# Print what a real node can leave behind on this host, in a stable, sorted
# form: mounts, network namespaces, links, routes, the nftables ruleset (which
# holds iptables-nft rules too), cgroups, runtime state directories, the files
# kubelet and CNI use outside the cluster dir, the sysctls the node touches,
# and node processes. Prove a clean stop by comparing two snapshots:
#
#   tests/cluster/host-state.sh >before
#   eval "$(KONTINUUM_REAL_NODE=1 tests/cluster/up.sh)"; ...; tests/cluster/down.sh
#   tests/cluster/host-state.sh >after && diff before after
#
# (tests/cluster/check-clean.sh does exactly that.)
set -euo pipefail

section() { printf '## %s\n' "$1"; }

section mounts
awk '{print $5, $9}' /proc/self/mountinfo | sort

section netns
ls -1 /run/netns /var/run/netns 2>/dev/null | sort -u || true

section links
ip -o link show | awk -F': ' '{sub(/@.*/, "", $2); print $2}' | sort

section routes
ip -4 route show table all | sort
ip -6 route show table all 2>/dev/null | grep -v '^fe80\|^local fe80\|^multicast' | sort || true

section nftables
# -s: no counters, so only rules and chains count.
nft -s list ruleset 2>/dev/null || echo "(nft not installed)"

section cgroups
# The tool running us puts each command in a memory cgroup of its own under
# /process_api: not ours, and different every time.
find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | grep -v '/process_api' | sort

section state
for d in /run/containerd /run/runc /var/lib/containerd /opt/containerd /var/lib/cni /etc/cni \
  /var/log/containers /var/log/pods /var/lib/kubelet /run/kontinuum-real-node; do
  if [[ -e $d ]]; then
    find "$d" -mindepth 0 2>/dev/null | sort
  else
    echo "$d (absent)"
  fi
done

section sysctls
for k in net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables \
  net.bridge.bridge-nf-call-ip6tables vm.overcommit_memory vm.panic_on_oom kernel.panic \
  kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes \
  net.netfilter.nf_conntrack_max net.netfilter.nf_conntrack_tcp_timeout_established \
  net.netfilter.nf_conntrack_tcp_timeout_close_wait; do
  printf '%s = %s\n' "$k" "$(sysctl -n "$k" 2>/dev/null || echo '(none)')"
done

section processes
for p in /proc/[0-9]*; do
  exe=$(readlink "$p/exe" 2>/dev/null) || continue
  case ${exe##*/} in
    containerd | containerd-shim* | runc | kubelet | kube-proxy | coredns | testimage)
      printf '%s %s\n' "${p#/proc/}" "$(tr '\0' ' ' <"$p/cmdline")" ;;
  esac
done | sort -n
