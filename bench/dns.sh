#!/bin/sh
# bench/dns.sh: Capstan's DNS server beside CoreDNS (issue 18 item 7), the
# same 1,000 names (svcN.appM.svc.cluster.local, A), the same load tool
# (dnsperf, Debian's package), on loopback, in interleaved rounds.
#
#   sh bench/dns.sh                 # 3 rounds of 10 s each
#   ROUNDS=5 SECONDS_EACH=20 sh bench/dns.sh
#
# Capstan serves the synthetic zone of dns/dnsload (`dnsload -serve`: the
# real dns.Server with a snapshot of 1,000 services). CoreDNS is built
# from the Go tool dependency in bench/coredns (its own module, so the
# main module does not carry CoreDNS's dependencies) and serves the same
# A records with its `file` plugin; when it cannot be built the anchor is
# reported as skipped. dnsperf and both servers share the machine's cores.
set -eu
ROUNDS=${ROUNDS:-3}
SECONDS_EACH=${SECONDS_EACH:-10}
DNSPERF_FLAGS=${DNSPERF_FLAGS:--c 4 -q 256 -T 2}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/capstan-dns.XXXXXX)
pids=""
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	for p in $pids; do wait "$p" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT INT TERM
command -v dnsperf > /dev/null || { echo "dnsperf: not installed (apt-get install dnsperf, or make deps)"; exit 1; }

i=0
while [ $i -lt 1000 ]; do
	echo "svc$i.app$((i / 100)).svc.cluster.local A"
	i=$((i + 1))
done > "$work/queries.txt"

(cd "$root" && go build -o "$work/dnsload" ./dns/dnsload/cmd/dnsload)
"$work/dnsload" -serve 127.0.0.1:15353 -services 1000 > "$work/capstan.log" 2>&1 &
pids="$pids $!"

coredns=""
if (cd "$root/bench/coredns" && go build -o "$work/coredns" github.com/coredns/coredns) > "$work/coredns-build.log" 2>&1; then
	coredns="$work/coredns"
	{
		echo '$ORIGIN cluster.local.'
		echo '@ 3600 IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30'
		echo '@ 3600 IN NS ns.dns.cluster.local.'
		echo 'ns.dns 3600 IN A 127.0.0.1'
		i=0
		while [ $i -lt 1000 ]; do
			# The VIPs of dnsload's synthetic services.
			echo "svc$i.app$((i / 100)).svc 5 IN A 10.96.$((i / 256 % 256)).$((i % 256))"
			i=$((i + 1))
		done
	} > "$work/cluster.local.db"
	cat > "$work/Corefile" <<COREFILE
cluster.local:15354 {
	file $work/cluster.local.db
}
COREFILE
	"$coredns" -conf "$work/Corefile" -quiet > "$work/coredns.log" 2>&1 &
	pids="$pids $!"
	echo "anchor: CoreDNS $("$coredns" -version | head -1 | tr -d '\n'), file plugin"
else
	echo "anchor CoreDNS: skipped (could not build the tool dependency in bench/coredns: $(tail -1 "$work/coredns-build.log"))"
fi

# Both answer before the rounds start.
for port in 15353 ${coredns:+15354}; do
	n=0
	until dnsperf -s 127.0.0.1 -p $port -d "$work/queries.txt" -n 1 > /dev/null 2>&1; do
		n=$((n + 1)); [ $n -lt 100 ] || { echo "nothing answers on port $port"; exit 1; }
		sleep 0.1
	done
done

qps() {
	dnsperf -s 127.0.0.1 -p "$1" -d "$work/queries.txt" -l "$SECONDS_EACH" $DNSPERF_FLAGS 2>&1 |
		awk '/Queries per second/ {q=$4} /Queries lost/ {l=$3} /Average Latency/ {a=$4} END {printf "%s qps, lost %s, avg latency %s s", q, l, a}'
}
r=1
while [ "$r" -le "$ROUNDS" ]; do
	echo "round $r (load $(cut -d' ' -f1 /proc/loadavg)): capstan $(qps 15353)"
	[ -z "$coredns" ] || echo "round $r (load $(cut -d' ' -f1 /proc/loadavg)): coredns $(qps 15354)"
	r=$((r + 1))
done
