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
#
# Needs git, curl and python3 (to follow continue tokens). Leaves nothing
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

"$BIN" server --data-dir "$work/data" --listen "127.0.0.1:$PORT" --pod-cidr 10.128.0.0/10 \
	--repo "$work/repo" > "$work/server.log" 2>&1 &
server=$!
pids="$server"
cfg="$work/data/admin.yaml"
n=0
until [ -s "$cfg" ] && "$BIN" --config "$cfg" get nodes > /dev/null 2>&1; do
	n=$((n + 1)); [ $n -lt 600 ] || { echo "server not up:"; tail "$work/server.log"; exit 1; }
	sleep 0.1
done
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
grep -E 'VmRSS|VmHWM' "/proc/$server/status"
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
grep -E 'VmRSS|VmHWM' "/proc/$server/status"
