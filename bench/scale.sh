#!/bin/sh
# bench/scale.sh: the control plane at scale (issue 18 item 6). Starts
# `capstan server` on a fresh data directory tracking a generated repository
# of one app with PODGROUPS pod groups of REPLICAS replicas, and `capstan
# hollow` with NODES simulated nodes; waits until every pod is Running,
# then reports the server's RSS (now and peak), and the time of a list of
# every pod: whole (one request, as before pagination) and paged (limit 500,
# following continue tokens) with curl, and through `capstan get pods -A`.
#
#   make build && sh bench/scale.sh            # 1,000 nodes, 30 x 1,000 pods
#   NODES=100 PODGROUPS=3 sh bench/scale.sh       # a quick run
#   STORE=etcd sh bench/scale.sh                  # three servers on a three-member etcd
#
# With STORE=etcd it starts three members of Debian's etcd (etcd-server) on
# loopback, fsync on, and three servers sharing server 0's CA, all tracking
# the repository (the leader syncs it and runs the controllers); the
# hollow nodes talk to server 0. It reports every server's RSS.
#
# Needs git, curl and python3 (to follow continue tokens), etcd for
# STORE=etcd. Leaves nothing
# running; the work directory is printed and removed unless KEEP=1.
set -eu
NODES=${NODES:-1000}
PODGROUPS=${PODGROUPS:-30}
REPLICAS=${REPLICAS:-1000}
BIN=$(realpath "${BIN:-bin/capstan}")
PORT=${PORT:-17443}
work=$(mktemp -d /tmp/capstan-scale.XXXXXX)
total=$((PODGROUPS * REPLICAS))
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT INT TERM

mkdir -p "$work/repo"
{
	echo 'apps: scale: pods: {'
	i=0
	while [ $i -lt "$PODGROUPS" ]; do
		echo "	g$i: {replicas: $REPLICAS, containers: c: {image: \"127.0.0.1:5000/scale/pause:v1\", resources: {cpu: \"10m\", memory: \"16Mi\"}}}"
		i=$((i + 1))
	done
	echo '}'
} > "$work/repo/scale.cue"
git -C "$work/repo" init -q -b main
git -C "$work/repo" add scale.cue
git -C "$work/repo" -c user.name=bench -c user.email=bench@example.com commit -qm scale

storeflags=""
if [ "${STORE:-bbolt}" = etcd ]; then
	cluster="" endpoints=""
	for i in 0 1 2; do
		cluster="${cluster:+$cluster,}m$i=http://127.0.0.1:$((PORT + 200 + i))"
		endpoints="${endpoints:+$endpoints,}http://127.0.0.1:$((PORT + 100 + i))"
	done
	for i in 0 1 2; do
		etcd --name "m$i" --data-dir "$work/etcd$i" \
			--listen-client-urls "http://127.0.0.1:$((PORT + 100 + i))" --advertise-client-urls "http://127.0.0.1:$((PORT + 100 + i))" \
			--listen-peer-urls "http://127.0.0.1:$((PORT + 200 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((PORT + 200 + i))" \
			--initial-cluster "$cluster" --initial-cluster-state new --quota-backend-bytes 8589934592 \
			> "$work/etcd$i.log" 2>&1 &
		pids="$pids $!"
		etcds="${etcds:-} $!"
	done
	storeflags="--store etcd --etcd-endpoints $endpoints"
	echo "etcd $(etcd --version | sed -n 's/^etcd Version: //p'), three members on 127.0.0.1:$((PORT + 100))-$((PORT + 102))"
fi
# startserver I: capstan server I on PORT+I with data in $work/dataI.
startserver() {
	"$BIN" server --data-dir "$work/data$1" --listen "127.0.0.1:$((PORT + $1))" --pod-cidr 10.128.0.0/10 \
		--repo "$work/repo" $storeflags ${storeflags:+--leader-id "server-$1"} > "$work/server$1.log" 2>&1 &
	pids="$pids $!"
	servers="${servers:-} $!"
}
# waitserver I: until server I answers.
waitserver() {
	n=0
	until [ -s "$work/data$1/admin.yaml" ] && "$BIN" --config "$work/data$1/admin.yaml" get nodes > /dev/null 2>&1; do
		n=$((n + 1)); [ $n -lt 600 ] || { echo "server $1 not up:"; tail "$work/server$1.log"; exit 1; }
		sleep 0.1
	done
}
startserver 0
waitserver 0

if [ "${STORE:-bbolt}" = etcd ]; then
	for i in 1 2; do
		mkdir -p "$work/data$i/pki" && chmod 700 "$work/data$i" "$work/data$i/pki"
		cp -p "$work/data0/pki/ca.crt" "$work/data0/pki/ca.key" "$work/data$i/pki/"
		startserver $i
		waitserver $i
	done
fi
cfg="$work/data0/admin.yaml"
"$BIN" --config "$cfg" hollow --nodes "$NODES" > "$work/hollow.log" 2>&1 &
pids="$pids $!"
start=$(date +%s)
token=$(sed -n 's/^token: *//p' "$cfg" | tr -d '"')
url="https://127.0.0.1:$PORT/api/v1/pods"
cat > "$work/pages.py" <<'PY'
# Lists every pod a page at a time (limit 500, following continue tokens;
# a server without pages answers whole) and prints: pods, Running pods.
import json, ssl, sys, urllib.parse, urllib.request
url, token = sys.argv[1], sys.argv[2]
ctx = ssl._create_unverified_context()
n, running, cont = 0, 0, ""
while True:
    q = "?limit=500" + ("&continue=" + urllib.parse.quote(cont) if cont else "")
    req = urllib.request.Request(url + q, headers={"Authorization": "Bearer " + token})
    body = json.load(urllib.request.urlopen(req, context=ctx))
    n += len(body["items"])
    running += sum(1 for p in body["items"] if p.get("status", {}).get("phase") == "Running")
    cont = body.get("continue", "")
    if not cont:
        break
print(n, running)
PY
running() {
	python3 "$work/pages.py" "$url" "$token" | cut -d' ' -f2
}
while :; do
	r=$(running)
	[ "$r" -ge "$total" ] && break
	[ $(($(date +%s) - start)) -lt 1800 ] || { echo "only $r of $total pods running after 30 min"; exit 1; }
	sleep 10
done
echo "converged: $total pods Running on $NODES hollow nodes in $(($(date +%s) - start)) s (load $(cut -d' ' -f1-3 /proc/loadavg))"
sleep 30 # settle: controllers idle, heartbeats only
rss() {
	i=0
	for p in $servers; do
		role=""
		grep -q 'msg=leading' "$work/server$i.log" && role=" (leader)"
		echo "server $i$role: $(grep -E "VmRSS|VmHWM|RssAnon|RssFile" "/proc/$p/status" | tr -s ' \t' ' ' | tr '\n' ' ')"
		i=$((i + 1))
	done
	for p in ${etcds:-}; do
		echo "etcd member pid $p: $(grep -E "VmRSS|VmHWM|RssAnon|RssFile" "/proc/$p/status" | tr -s ' \t' ' ' | tr '\n' ' ')"
	done
}
rss
t0=$(date +%s%N)
curl -sk -H "Authorization: Bearer $token" "$url" -o "$work/whole.json"
t1=$(date +%s%N)
echo "whole list: $(( (t1 - t0) / 1000000 )) ms, $(wc -c < "$work/whole.json") bytes"
t0=$(date +%s%N)
echo "paged list (python, decoding each page): $(python3 "$work/pages.py" "$url" "$token" | cut -d' ' -f1) pods, \c"
t1=$(date +%s%N)
echo "$(( (t1 - t0) / 1000000 )) ms (python decodes each page)"
t0=$(date +%s%N)
"$BIN" --config "$cfg" get pods -A > /dev/null
t1=$(date +%s%N)
echo "capstan get pods -A: $(( (t1 - t0) / 1000000 )) ms"
rss
