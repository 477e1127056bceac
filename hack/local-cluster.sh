#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, without Docker.
#
#   hack/local-cluster.sh up       build (cached) and start it; idempotent
#   hack/local-cluster.sh status   the components, the node and the pods
#   hack/local-cluster.sh down     stop it and remove its state (pods,
#                                  etcd, network); keeps the binaries,
#                                  certificates and images for a fast up
#   hack/local-cluster.sh purge    down, then remove the run dir itself
#                                  (binaries, images: ~1 GB) and the data
#                                  dirs the e2e suite and make cluster-demo
#                                  put on hostPath volumes; the build cache
#                                  ($RECPIPELINE_CACHE) stays
#
# Components, each a background process with a pid file and a log under the
# run dir ($RECPIPELINE_CLUSTER_DIR, default /var/lib/recpipeline-cluster):
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, containerd
# (Debian's, with runc v1.5.2 built here because Debian's runc fails on this
# kernel), kubelet, kube-proxy (iptables mode, for ClusterIPs) and CoreDNS
# (cluster.local only, no upstream). Pods get addresses on a CNI bridge.
# The Kubernetes binaries, etcd, runc and CoreDNS are built from source and
# cached in $RECPIPELINE_CACHE (default ~/.cache/recpipeline).
#
# Network safety (../shared/ENVIRONMENT.md): before anything starts, the
# service range is a local route on lo, the pod range is blackholed except the
# bridge's own /24, and pods may not send outside the pod range (FORWARD
# drop). No masquerading, and pods get no upstream nameserver. `down` undoes
# all of it.
#
# Images: there is no registry. Import images into the cluster's containerd
# (ctr reads $CONTAINERD_ADDRESS, which `up` prints) and use them with
# imagePullPolicy: Never or IfNotPresent:
#   ctr -n k8s.io images import image.tar
# hack/local-cluster/ociimage writes such an archive from static binaries.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
run=${RECPIPELINE_CLUSTER_DIR:-/var/lib/recpipeline-cluster}
cache=${RECPIPELINE_CACHE:-$HOME/.cache/recpipeline}

# Addresses. The pod range is blackholed as a whole; the node's pods use the
# bridge's /24, whose first address is the bridge, the node IP, the API
# server's and the cluster DNS address.
pod_range=10.244.0.0/16
pod_subnet=10.244.0.0/24
node_ip=10.244.0.1
bridge=recpipe0
service_range=10.96.0.0/16
node_name=recpipeline-node

runc_version=v1.5.2
coredns_version=v1.13.1
pause_image=registry.local/recpipeline/pause:1

bin=$run/bin
pki=$run/pki
kubeconfig=$pki/admin.kubeconfig
containerd_sock=$run/containerd/containerd.sock
components=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy coredns)
# Sysctls the components change (the CNI bridge plugin turns on forwarding,
# the kubelet sets its kernel defaults); `down` puts the old values back.
sysctls=(net.ipv4.ip_forward vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet
  net.bridge.bridge-nf-call-iptables)

log() { echo "[local-cluster $(date +%T)] $*" >&2; }
die() { log "error: $*"; exit 1; }
# has REGEX CMD...: CMD's output has a line matching REGEX (no grep -q in a
# pipeline: with pipefail, its early exit fails the pipeline).
has() {
  local out
  out=$("${@:2}" 2>/dev/null) || return 1
  grep -q -- "$1" <<<"$out"
}
# iptables without the notice that iptables-legacy tables exist (they are not
# ours; this machine has them).
iptables() {
  local rc
  { command iptables "$@" 2>&1 1>&3 3>&- | { grep -v 'iptables-legacy tables present' >&2 || true; }; rc=${PIPESTATUS[0]}; } 3>&1
  return "$rc"
}
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
ctr() { command ctr --address "$containerd_sock" -n k8s.io "$@"; }

# ---------------------------------------------------------------- processes

pidfile() { echo "$run/pids/$1.pid"; }

# running NAME: the component's pid file names a live process of our binary.
running() {
  local f pid
  f=$(pidfile "$1")
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  # Its program (argv[0]) is the component's binary, not a reused pid.
  [ "$(basename "$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)")" = "$1" ]
}

# start NAME CMD...: start CMD in the background unless NAME already runs.
start() {
  local name=$1
  shift
  if running "$name"; then
    log "$name already running (pid $(cat "$(pidfile "$name")"))"
    return
  fi
  log "starting $name"
  echo "$(date -Is) $*" >>"$run/logs/$name.log"
  setsid "$@" </dev/null >>"$run/logs/$name.log" 2>&1 &
  echo $! >"$(pidfile "$name")"
}

# stop NAME...: TERM, then KILL after 20 s, the processes in the pid files.
stop() {
  local name pid i pids=()
  for name in "$@"; do
    if running "$name"; then
      pid=$(cat "$(pidfile "$name")")
      log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
    rm -f "$(pidfile "$name")"
  done
  for pid in "${pids[@]}"; do
    for i in $(seq 1 100); do
      [ -d "/proc/$pid" ] || break
      sleep 0.2
    done
    if [ -d "/proc/$pid" ]; then
      log "pid $pid did not stop; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
    fi
  done
}

# wait_for WHAT SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
  local what=$1 secs=$2 i
  shift 2
  for i in $(seq 1 $((secs * 2))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  die "$what not ready after ${secs}s; logs in $run/logs"
}

# ------------------------------------------------------------------- builds

install_packages() {
  local missing=()
  command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null || missing+=(containerd)
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] || missing+=(containernetworking-plugins)
  [ -f /usr/include/seccomp.h ] || missing+=(libseccomp-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  # type -P: the function iptables below must not pass for the command.
  type -P iptables >/dev/null || missing+=(iptables)
  command -v ip >/dev/null || missing+=(iproute2)
  command -v openssl >/dev/null || missing+=(openssl)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >"$run/logs/apt.log" 2>&1 ||
      { apt-get update >>"$run/logs/apt.log" 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${missing[@]}" >>"$run/logs/apt.log" 2>&1; } ||
      die "apt-get install ${missing[*]} failed; see $run/logs/apt.log"
  fi
}

# go_install NAME VERSION PKG [go flags...]: `go install PKG@VERSION` once,
# cached as $cache/bin/NAME-VERSION, copied to $bin/NAME.
go_install() {
  local name=$1 version=$2 pkg=$3 cached tmp
  shift 3
  cached=$cache/bin/$name-$version
  if [ ! -x "$cached" ]; then
    log "building $name $version (cached in $cache/bin)"
    tmp=$(mktemp -d)
    GOBIN=$tmp go install "$@" "$pkg@$version"
    mv "$tmp/$name" "$cached"
    rmdir "$tmp"
  fi
  if ! cmp -s "$cached" "$bin/$name"; then
    cp "$cached" "$bin/$name.tmp" && mv -f "$bin/$name.tmp" "$bin/$name"
  fi
}

build() {
  mkdir -p "$cache/bin"
  CGO_ENABLED=1 go_install runc "$runc_version" github.com/opencontainers/runc -tags seccomp
  CGO_ENABLED=0 go_install coredns "$coredns_version" github.com/coredns/coredns
  "$root/hack/build-kube-binaries.sh" "$bin" etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl
  # The pod sandbox image: a static pause binary in a one-layer OCI image.
  if [ ! -f "$run/images/pause.tar" ]; then
    log "building the pause image $pause_image"
    mkdir -p "$run/images"
    (cd "$root" && CGO_ENABLED=0 go build -trimpath -ldflags=-s -o "$run/images/pause" ./hack/local-cluster/pause &&
      go run ./hack/local-cluster/ociimage -o "$run/images/pause.tar" -name "$pause_image" \
        -entrypoint /pause -user 65535:65535 "$run/images/pause=/pause")
  fi
}

# --------------------------------------------------------------------- pki

# cert NAME SUBJECT [SANS]: a key and a certificate signed by the cluster CA.
cert() {
  local name=$1 subject=$2 sans=${3:-} ext
  [ -f "$pki/$name.crt" ] && return
  ext=$(mktemp)
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$sans" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$sans"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$ext"
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 3650 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$ext" "$pki/$name.csr"
}

write_pki() {
  mkdir -p "$pki"
  chmod 700 "$pki"
  if [ ! -f "$pki/ca.crt" ]; then
    log "writing certificates and the admin kubeconfig to $pki"
    openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
    openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=recpipeline-local-ca" -days 3650 -out "$pki/ca.crt" 2>/dev/null
  fi
  # The first address of the service range is the kubernetes Service.
  local kube_svc_ip
  kube_svc_ip=$(echo "$service_range" | awk -F'[./]' '{print $1"."$2"."$3"."$4+1}')
  cert apiserver "/CN=kube-apiserver" \
    "IP:$node_ip,IP:$kube_svc_ip,IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # One identity for the admin and every component: system:masters.
  cert admin "/O=system:masters/CN=admin"
  if [ ! -f "$pki/sa.key" ]; then
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
  cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: recpipeline-local
  cluster:
    server: https://$node_ip:6443
    certificate-authority: $pki/ca.crt
users:
- name: admin
  user:
    client-certificate: $pki/admin.crt
    client-key: $pki/admin.key
contexts:
- name: recpipeline-local
  context: {cluster: recpipeline-local, user: admin}
current-context: recpipeline-local
EOF
}

# ------------------------------------------------------------------ network

# Our own routes, which `up` may find from an earlier run.
ours() { grep -v -e "dev $bridge" -e "^blackhole $pod_range" -e "^local $service_range dev lo" || true; }

# check_ranges: no route of this machine overlaps the ranges we pick.
check_ranges() {
  local clash
  clash=$( {
    ip -4 route show table all root "$pod_range"
    ip -4 route show table all root "$service_range"
    ip -4 route show table all match "$pod_range"
    ip -4 route show table all match "$service_range"
  } | { grep -v -e '^default' -e '^broadcast' || true; } | ours)
  [ -z "$clash" ] || die "routes on this machine overlap $pod_range or $service_range: $clash"
}

# Paths outside the run dir that the components hard-code: the containerd
# shims' sockets, the kubelet's device-plugin socket, libcni's cache and the
# kubelet's container log links. `down` removes those that `up` found absent.
outside=(/run/containerd /var/lib/kubelet /var/lib/cni /var/log/containers /var/log/pods)

# remember_state: before anything changes, note what this machine had (once
# per cluster lifetime, so a second `up` does not take our objects for its).
remember_state() {
  [ -f "$run/state/saved" ] && return
  local s p
  for s in "${sysctls[@]}"; do
    echo "$s=$(sysctl -n "$s")"
  done >"$run/state/sysctl.saved"
  for p in "${outside[@]}"; do
    [ -e "$p" ] || echo "$p"
  done >"$run/state/created-paths"
  { nft list tables 2>/dev/null || true; } >"$run/state/nft-tables.before"
  touch "$run/state/saved"
}

network_up() {
  check_ranges
  remember_state
  # Safety first: nothing of ours may leave the machine.
  has "^local $service_range dev lo" ip route show table local ||
    ip route add local "$service_range" dev lo
  has "^blackhole $pod_range" ip route show || ip route add blackhole "$pod_range"
  iptables -C FORWARD -s "$pod_range" ! -d "$pod_range" -j DROP 2>/dev/null ||
    iptables -I FORWARD -s "$pod_range" ! -d "$pod_range" -j DROP
  # The bridge carries the gateway address of the pod /24: the node IP.
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add "$bridge" type bridge
  fi
  has "inet $node_ip/" ip -4 addr show dev "$bridge" ||
    ip addr add "$node_ip/${pod_subnet#*/}" dev "$bridge"
  ip link set "$bridge" up
  # The kube-proxy needs bridged traffic to pass iptables (ClusterIP replies).
  sysctl -qw net.bridge.bridge-nf-call-iptables=1
}

# forward_drop_first: the FORWARD drop of pod traffic leaving the pod range
# stays the first rule, ahead of the jumps kube-proxy inserts when it starts.
forward_drop_first() {
  local rule="-A FORWARD -s $pod_range ! -d $pod_range -j DROP" n
  [ "$(iptables -S FORWARD 2>/dev/null | sed -n 2p)" = "$rule" ] && return
  iptables -I FORWARD -s "$pod_range" ! -d "$pod_range" -j DROP
  # Drop the later copies, last first (rule n is line n+1 of -S).
  for n in $(iptables -S FORWARD 2>/dev/null | grep -n -x -F -- "$rule" | cut -d: -f1 | sed 1d | sort -rn); do
    iptables -D FORWARD $((n - 1))
  done
}

network_down() {
  while iptables -C FORWARD -s "$pod_range" ! -d "$pod_range" -j DROP 2>/dev/null; do
    iptables -D FORWARD -s "$pod_range" ! -d "$pod_range" -j DROP
  done
  ! ip link show "$bridge" >/dev/null 2>&1 || { log "deleting bridge $bridge"; ip link del "$bridge"; }
  ! has "^blackhole $pod_range" ip route show || ip route del blackhole "$pod_range"
  ! has "^local $service_range dev lo" ip route show table local || ip route del local "$service_range" dev lo table local
  if [ -f "$run/state/sysctl.saved" ]; then
    local line
    while read -r line; do sysctl -qw "$line" || true; done <"$run/state/sysctl.saved"
  fi
  # nftables tables that iptables-nft made for our rules, once empty.
  if [ -f "$run/state/nft-tables.before" ] && command -v nft >/dev/null; then
    local family name
    nft list tables 2>/dev/null | while read -r _ family name; do
      grep -qx "table $family $name" "$run/state/nft-tables.before" && continue
      # Only table, chain and policy lines left: no rule of anyone's.
      if [ -z "$(nft list table "$family" "$name" | grep -v -E '^\s*(table|chain|type .* policy|}|$)')" ]; then
        nft delete table "$family" "$name" || true
      fi
    done
  fi
}

# outside_cleanup: what the components left outside the run dir.
outside_cleanup() {
  local p s
  # Shim sockets nobody listens on any more.
  if [ -d /run/containerd/s ]; then
    local listening
    listening=$(ss -xlH 2>/dev/null | awk '{print $5}')
    for s in /run/containerd/s/*; do
      if [ -S "$s" ] && ! grep -qxF "$s" <<<"$listening"; then rm -f "$s"; fi
    done
  fi
  find /var/log/containers -maxdepth 1 -type l -lname "$run/*" -delete 2>/dev/null || true
  rm -f /var/lib/cni/results/recpipeline-* /var/lib/cni/results/cni-loopback-*
  if [ -f "$run/state/created-paths" ]; then
    while read -r p; do
      if [ -n "$p" ]; then rm -rf "$p"; fi
    done <"$run/state/created-paths"
  fi
}

# iptables_cleanup: remove the KUBE-* chains and the rules jumping to them
# that kube-proxy and the kubelet made, in every table, IPv4 and IPv6.
iptables_cleanup() {
  local ipt table rule chain
  if [ -x "$bin/kube-proxy" ]; then
    "$bin/kube-proxy" --cleanup --proxy-mode=iptables >>"$run/logs/kube-proxy-cleanup.log" 2>&1 || true
  fi
  for ipt in iptables ip6tables; do
    type -P "$ipt" >/dev/null || continue
    for table in filter nat mangle raw; do
      "$ipt" -t "$table" -S >/dev/null 2>&1 || continue
      # Jumps to KUBE-* chains from the built-in chains, then the chains.
      "$ipt" -t "$table" -S 2>/dev/null | awk '$1 == "-A" && $2 !~ /^KUBE-/ && / (-j|--jump) KUBE-/' |
        while read -r rule; do
          eval "\"$ipt\" -t $table ${rule/-A/-D}" 2>/dev/null || true
        done
      for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
        "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
      done
      for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '$1 == "-N" && $2 ~ /^KUBE-/ {print $2}'); do
        "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
      done
    done
  done
  # The kube-proxy and the kubelet also leave nftables canary tables.
  if command -v nft >/dev/null; then
    local family name
    nft list tables 2>/dev/null | while read -r _ family name; do
      case $name in kube-proxy | kubelet-*) nft delete table "$family" "$name" 2>/dev/null || true ;; esac
    done
  fi
}

# ------------------------------------------------------------------ configs

write_configs() {
  mkdir -p "$run/cni/net.d" "$run/containerd" "$run/kubelet" "$run/coredns"
  # The CNI network: the bridge above, host-local addresses from the /24, no
  # masquerading, leases kept under the run dir.
  cat >"$run/cni/net.d/10-recpipeline.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "recpipeline",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$bridge",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "$pod_subnet", "gateway": "$node_ip"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$run/cni/ipam"
      }
    },
    {"type": "loopback"}
  ]
}
EOF
  cat >"$run/containerd/config.toml" <<EOF
version = 2
root = "$run/containerd/root"
state = "$run/containerd/state"

[grpc]
  address = "$containerd_sock"

[ttrpc]
  address = "$containerd_sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$run/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # This kernel refuses negative oom_score_adj values.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$bin/runc"
        Root = "$run/containerd/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$run/cni/net.d"
EOF
  # Pods get the cluster DNS and nothing from the host's resolv.conf.
  echo "# no upstream nameserver: pods resolve cluster names only" >"$run/kubelet/resolv.conf"
  cat >"$run/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $node_ip
port: 10250
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
clusterDNS: [$node_ip]
clusterDomain: cluster.local
resolvConf: $run/kubelet/resolv.conf
containerRuntimeEndpoint: unix://$containerd_sock
podLogsDir: $run/pod-logs
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
evictionHard:
  memory.available: 100Mi
  nodefs.available: 2%
  nodefs.inodesFree: 2%
  imagefs.available: 2%
# Imported images cannot be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
  # Cluster DNS on the bridge address: cluster.local from the API, NXDOMAIN
  # for every other name (no forwarding off the machine).
  cat >"$run/coredns/Corefile" <<EOF
cluster.local:53 {
    bind $node_ip
    errors
    kubernetes cluster.local {
        kubeconfig $kubeconfig
        pods insecure
    }
    cache 5
}
.:53 {
    bind $node_ip
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
}

# ------------------------------------------------------------------- checks

# dns_answers NAME: the cluster DNS answers an A query for NAME with a record.
dns_answers() {
  local name=$1 q label reply
  q='\x52\x50\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00'
  IFS=. read -ra labels <<<"$name"
  for label in "${labels[@]}"; do
    q+=$(printf '\\x%02x' "${#label}")$label
  done
  q+='\x00\x00\x01\x00\x01'
  # One write per datagram: printf would send the query in pieces.
  printf "$q" >"$run/state/dns-query"
  reply=$(
    exec 3<>"/dev/udp/$node_ip/53" || exit 1
    cat "$run/state/dns-query" >&3
    timeout 2 dd bs=4096 count=1 <&3 2>/dev/null | od -An -tx1 -N12 | tr -d ' \n'
  ) || return 1
  # id 5250, a response (0x8_) with rcode 0 and at least one answer.
  [[ $reply =~ ^52508.[0-9a-f]0[0-9a-f]{4}([0-9a-f]{4}) ]] && [ "${BASH_REMATCH[1]}" != 0000 ]
}

node_ready() {
  [ "$(kubectl get node "$node_name" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

# -------------------------------------------------------------------- up

up() {
  local t0=$SECONDS
  mkdir -p "$run"/{bin,pids,logs,state,images}
  install_packages
  build
  write_pki
  network_up
  write_configs

  start containerd containerd --config "$run/containerd/config.toml"
  wait_for containerd 30 ctr version
  has "^$pause_image\$" ctr images ls -q || ctr images import "$run/images/pause.tar" >/dev/null

  start etcd "$bin/etcd" --name local --data-dir "$run/etcd" \
    --listen-client-urls http://127.0.0.1:12379 --advertise-client-urls http://127.0.0.1:12379 \
    --listen-peer-urls http://127.0.0.1:12380 --initial-advertise-peer-urls http://127.0.0.1:12380 \
    --initial-cluster local=http://127.0.0.1:12380
  wait_for etcd 30 curl -fsS http://127.0.0.1:12379/health

  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers=http://127.0.0.1:12379 \
    --bind-address="$node_ip" --advertise-address="$node_ip" --secure-port=6443 \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --authorization-mode=Node,RBAC --allow-privileged=true \
    --service-cluster-ip-range="$service_range" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --endpoint-reconciler-type=none \
    --kubelet-preferred-address-types=InternalIP \
    --kubelet-client-certificate="$pki/admin.crt" --kubelet-client-key="$pki/admin.key" \
    --profiling=false
  wait_for kube-apiserver 90 kubectl get --raw /readyz

  # With no endpoint reconciler, point the kubernetes Service at the API
  # server ourselves, so in-cluster clients reach it.
  local out
  out=$(kubectl apply -f - 2>&1 <<EOF
apiVersion: v1
kind: Endpoints
metadata:
  name: kubernetes
  namespace: default
  labels: {endpointslice.kubernetes.io/skip-mirror: "true"}
subsets:
- addresses: [{ip: $node_ip}]
  ports: [{name: https, port: 6443, protocol: TCP}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: kubernetes
  namespace: default
  labels: {kubernetes.io/service-name: kubernetes}
addressType: IPv4
endpoints:
- addresses: [$node_ip]
  conditions: {ready: true}
ports:
- {name: https, port: 6443, protocol: TCP}
EOF
) || die "cannot write the kubernetes Service's endpoints: $out"

  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$kubeconfig" --bind-address=127.0.0.1 \
    --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
    --controllers='*' --use-service-account-credentials \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --service-cluster-ip-range="$service_range" --cluster-cidr="$pod_range" \
    --leader-elect=false --profiling=false
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$kubeconfig" --bind-address=127.0.0.1 \
    --authentication-kubeconfig="$kubeconfig" --authorization-kubeconfig="$kubeconfig" \
    --leader-elect=false --profiling=false

  start kubelet "$bin/kubelet" \
    --config="$run/kubelet/config.yaml" --kubeconfig="$kubeconfig" \
    --root-dir="$run/kubelet" --cert-dir="$run/kubelet/pki" \
    --hostname-override="$node_name" --node-ip="$node_ip"
  start kube-proxy "$bin/kube-proxy" \
    --kubeconfig="$kubeconfig" --proxy-mode=iptables \
    --hostname-override="$node_name" --cluster-cidr="$pod_range" \
    --nodeport-addresses=primary \
    --metrics-bind-address=127.0.0.1:10249 --healthz-bind-address=127.0.0.1:10256 \
    --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
    --iptables-localhost-nodeports=false
  start coredns "$bin/coredns" -conf "$run/coredns/Corefile"

  wait_for "node $node_name" 120 node_ready
  wait_for "kube-proxy rules" 60 has KUBE-FORWARD iptables -S FORWARD
  forward_drop_first
  wait_for "cluster DNS" 60 dns_answers kubernetes.default.svc.cluster.local
  log "cluster up in $((SECONDS - t0))s"
  status
  echo
  echo "export KUBECONFIG=$kubeconfig"
  echo "export CONTAINERD_ADDRESS=$containerd_sock  # for ctr -n k8s.io images import"
  echo "export PATH=$bin:\$PATH  # kubectl"
}

# -------------------------------------------------------------------- down

# shims: containerd-shim processes of our containerd.
shims() {
  local p
  for p in /proc/[0-9]*; do
    [[ $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) == *"-address $containerd_sock "* ]] && echo "${p#/proc/}"
  done
  return 0
}

# unmount_all: every mount point under the run dir, deepest first.
unmount_all() {
  local m
  awk -v r="$run/" '{ gsub(/\\040/, " ", $5) } index($5, r) == 1 { print $5 }' /proc/self/mountinfo | sort -r -u |
    while read -r m; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "cannot unmount $m"
    done
}

down() {
  [ -d "$run" ] || { log "nothing to do: $run does not exist"; return; }
  # Let the kubelet tear the pods down (CNI DEL, network namespaces) while
  # nothing recreates them.
  stop kube-controller-manager kube-scheduler
  if running kube-apiserver && running kubelet && running containerd; then
    log "deleting every pod"
    kubectl delete pods --all --all-namespaces --grace-period=1 --timeout=60s >>"$run/logs/down.log" 2>&1 || true
    local i
    for i in $(seq 1 60); do
      [ -z "$(ctr tasks ls -q 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop kubelet kube-proxy coredns
  stop kube-apiserver
  stop etcd
  if running containerd; then
    local t c
    for t in $(ctr tasks ls -q 2>/dev/null); do
      ctr tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
    done
    sleep 1
    for t in $(ctr tasks ls -q 2>/dev/null); do
      ctr tasks delete -f "$t" >/dev/null 2>&1 || true
    done
    for c in $(ctr containers ls -q 2>/dev/null); do
      ctr containers delete "$c" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  local pids
  pids=$(shims)
  if [ -n "$pids" ]; then
    log "killing leftover containerd shims: $pids"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.5
  fi
  unmount_all
  iptables_cleanup
  network_down
  # Cgroups the kubelet made (cgroup v1 and v2 layouts).
  local d
  for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods /sys/fs/cgroup/*/kubepods.slice /sys/fs/cgroup/kubepods.slice; do
    [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  outside_cleanup
  # Cluster state goes; binaries, certificates and images stay for the next up.
  rm -rf "$run/etcd" "$run/kubelet" "$run/pod-logs" "$run/cni/ipam" "$run/containerd/state" "$run/containerd/runc" \
    "$run/pids" "$run/state"
  log "cluster down"
}

# Data directories of hostPath volumes: the e2e suite's (E2E_DATA_DIR) and
# make cluster-demo's (DEMO_DATA_DIR).
data_dirs=("${E2E_DATA_DIR:-/var/lib/recpipeline-e2e}" "${DEMO_DATA_DIR:-/var/lib/recpipeline-demo}")

purge() {
  down
  local d
  # Never recurse into a file system still mounted under the run dir.
  if awk -v r="$run/" 'index($5, r) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    die "mounts under $run remain after down; unmount them, then purge again"
  fi
  for d in "$run" "${data_dirs[@]}"; do
    if [ -e "$d" ]; then
      log "removing $d ($(du -sh "$d" 2>/dev/null | cut -f1))"
      rm -rf "$d"
    fi
  done
  log "purged; the build cache $cache stays ($(du -sh "$cache" 2>/dev/null | cut -f1)): remove it by hand to rebuild from source"
}

status() {
  local name
  for name in "${components[@]}"; do
    if running "$name"; then
      printf '%-24s running (pid %s)\n' "$name" "$(cat "$(pidfile "$name")")"
    else
      printf '%-24s stopped\n' "$name"
    fi
  done
  if running kube-apiserver; then
    echo
    kubectl get nodes -o wide
    echo
    kubectl get pods --all-namespaces -o wide
  fi
}

[ "$(id -u)" = 0 ] || die "run as root: it manages routes, iptables, mounts and containerd"
case ${1:-} in
  up) up ;;
  down) down ;;
  purge) purge ;;
  status) status ;;
  *) echo "usage: $0 up|down|purge|status" >&2; exit 2 ;;
esac
