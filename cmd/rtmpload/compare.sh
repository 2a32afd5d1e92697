#!/usr/bin/env bash
# compare.sh runs the same rtmpload load against mtrelay and against nginx
# with Debian's libnginx-mod-rtmp, one server after the other, each pinned to
# one core (server on core 0, load generator on core 1), and prints one row
# per server and the mtrelay/nginx ratios for every player count.
#
# Usage (from anywhere; needs root for apt only if nginx is missing):
#
#   bash cmd/rtmpload/compare.sh                       # 500 players, 20 s, 2.7 Mbit/s input
#   bash cmd/rtmpload/compare.sh -n "100 500 1000" -d 20s
#   bash cmd/rtmpload/compare.sh -n 500 -P /tmp/mtrelay-500.pprof   # also CPU-profile mtrelay
#   bash cmd/rtmpload/compare.sh -b 0                  # use testdata/fixture.flv (0.7 Mbit/s)
#   bash cmd/rtmpload/compare.sh -s mtrelay -t rtmpt   # one server, RTMPT players
#
# Options:
#   -n "N..."   player counts (default 500)
#   -d DUR      hold window per run (default 20s)
#   -r DUR      ramp (default 5s); -S DUR settle (default 2s)
#   -b KBIT     video bitrate of the generated input in kbit/s (default 2700;
#               0 = testdata/fixture.flv); generated in the temp dir, never committed
#   -i FILE     use this FLV as input instead
#   -s "S..."   servers (default "mtrelay nginx")
#   -t PROTO    players' protocol: rtmp (default), rtmpt, httpflv (nginx-rtmp
#               serves RTMP only, so other protocols skip it)
#   -P FILE     write a CPU profile of mtrelay (--debug-addr) over the window
#               of the largest run to FILE
#   -o DIR      keep the JSON reports and logs in DIR (default: a temp dir, removed)
#   -c "A B"    cores for server and load generator (default "0 1")
#   -m BIN      run this mtrelay binary instead of building ./cmd/mtrelay
#               (e.g. one built from an older commit, for before/after numbers)
#
# Everything listens on 127.0.0.1 ports chosen free at start. nginx runs
# from its own generated config in the temp dir (daemon off, master_process
# off, own pid and log paths), never as the system service. Every process
# the script starts is stopped by its pid on exit.
set -euo pipefail

players="500"
duration="20s"
ramp="5s"
settle="2s"
kbit=2700
input=""
servers="mtrelay nginx"
proto="rtmp"
profile=""
outdir=""
cores="0 1"
mtrelay_bin=""

while getopts "n:d:r:S:b:i:s:t:P:o:c:m:h" opt; do
	case $opt in
	n) players=$OPTARG ;;
	d) duration=$OPTARG ;;
	r) ramp=$OPTARG ;;
	S) settle=$OPTARG ;;
	b) kbit=$OPTARG ;;
	i) input=$OPTARG ;;
	s) servers=$OPTARG ;;
	t) proto=$OPTARG ;;
	P) profile=$OPTARG ;;
	o) outdir=$OPTARG ;;
	c) cores=$OPTARG ;;
	m) mtrelay_bin=$(realpath "$OPTARG") ;;
	h | *)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		[ "$opt" = h ] && exit 0 || exit 2
		;;
	esac
done
read -r srvcore loadcore <<<"$cores"

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
export PATH=$PATH:/usr/local/go/bin:/usr/sbin

tmp=$(mktemp -d /tmp/rtmpload-compare.XXXXXX)
keep=${outdir:-}
[ -n "$keep" ] && mkdir -p "$keep"
out=${keep:-$tmp}
pids=()
cleanup() {
	for p in "${pids[@]:-}"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
	done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "compare.sh: $*" >&2; exit 1; }
log() { echo "compare.sh: $*" >&2; }

secs() { # 20s, 1m30s, 500ms → seconds (integer, rounded up)
	local d=$1
	python3 -c 'import re,sys,math
s=sys.argv[1]; t=0.0
for n,u in re.findall(r"([0-9.]+)(ms|s|m|h)", s): t+=float(n)*{"ms":1e-3,"s":1,"m":60,"h":3600}[u]
print(math.ceil(t))' "$d"
}

freeport() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# waitport HOST:PORT waits up to 10 s for a listener.
waitport() {
	local hp=$1
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/${hp%:*}/${hp#*:}") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

command -v taskset >/dev/null || die "taskset not found (util-linux)"
[ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 cores: server and load generator share one"
command -v jq >/dev/null || die "jq not found (apt-get install jq)"

# Tools: nginx with the RTMP module, ffmpeg for the input.
if [[ " $servers " == *" nginx "* ]] && [ "$proto" = rtmp ]; then
	modso=$(ls /usr/lib/nginx/modules/ngx_rtmp_module.so /usr/share/nginx/modules/ngx_rtmp_module.so 2>/dev/null | head -1 || true)
	if ! command -v nginx >/dev/null || [ -z "$modso" ]; then
		log "installing nginx-light libnginx-mod-rtmp"
		[ "$(id -u)" = 0 ] || die "nginx-light and libnginx-mod-rtmp are missing; install them as root"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nginx-light libnginx-mod-rtmp >&2
		modso=$(ls /usr/lib/nginx/modules/ngx_rtmp_module.so /usr/share/nginx/modules/ngx_rtmp_module.so 2>/dev/null | head -1 || true)
		[ -n "$modso" ] || die "ngx_rtmp_module.so not found after install"
	fi
fi

if [ -n "$mtrelay_bin" ]; then
	log "building rtmpload; mtrelay is $mtrelay_bin"
	cp "$mtrelay_bin" "$tmp/mtrelay"
else
	# The release build, as in the Dockerfile: static (no libc mapped), trimmed paths.
	log "building mtrelay (CGO_ENABLED=0 -trimpath, as the Dockerfile) and rtmpload"
	CGO_ENABLED=0 go build -trimpath -o "$tmp/mtrelay" ./cmd/mtrelay
fi
go build -o "$tmp/rtmpload" ./cmd/rtmpload

if [ -z "$input" ]; then
	if [ "$kbit" = 0 ]; then
		input=testdata/fixture.flv
	else
		input=$tmp/input-${kbit}k.flv
		log "generating a 30 s 1280x720 input at ${kbit}k video + 128k AAC (ffmpeg testsrc2)"
		command -v ffmpeg >/dev/null || die "ffmpeg not found"
		ffmpeg -hide_banner -loglevel error -y \
			-f lavfi -i "testsrc2=size=1280x720:rate=25:duration=30" \
			-f lavfi -i "sine=frequency=440:beep_factor=4:sample_rate=44100:duration=30" \
			-map 0:v -map 1:a \
			-c:v libx264 -preset veryfast -profile:v main -pix_fmt yuv420p \
			-b:v "${kbit}k" -maxrate "${kbit}k" -bufsize "$((kbit * 2))k" \
			-g 50 -keyint_min 50 -sc_threshold 0 -bf 2 \
			-c:a aac -b:a 128k -ar 44100 -ac 2 \
			-f flv "$input"
	fi
fi

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

dur_s=$(secs "$duration")
ramp_s=$(secs "$ramp")
settle_s=$(secs "$settle")
maxn=$(tr ' ' '\n' <<<"$players" | sort -n | tail -1)

srv_pid=""
srv_rtmp=""
srv_http=""
srv_debug=""

# start_server NAME N: starts NAME pinned to $srvcore, sets srv_pid and addresses.
start_server() {
	local name=$1 n=$2
	srv_rtmp=127.0.0.1:$(freeport)
	srv_http=127.0.0.1:$(freeport)
	srv_debug=""
	case $name in
	mtrelay)
		# --debug-addr only to profile: it turns heap profiling on (more memory).
		local dbg=()
		if [ -n "$profile" ] && [ "$n" = "$maxn" ]; then
			srv_debug=127.0.0.1:$(freeport)
			dbg=(--debug-addr "$srv_debug")
		fi
		taskset -c "$srvcore" "$tmp/mtrelay" --rtmp-addr "$srv_rtmp" --http-addr "$srv_http" \
			"${dbg[@]}" --log-level warn --log-format json \
			--max-conns $((n + 64)) --rtmpt-max-tunnels $((n + 64)) --rtmpt-max-tunnels-per-ip $((n + 64)) \
			>"$out/mtrelay-$n.log" 2>&1 &
		srv_pid=$!
		;;
	nginx)
		local d=$tmp/nginx-$n
		mkdir -p "$d/logs"
		cat >"$d/nginx.conf" <<EOF
# generated by compare.sh: foreground, one process, private paths
load_module $modso;
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 65536;
pid $d/nginx.pid;
error_log $out/nginx-$n-error.log warn;
events { worker_connections $((n + 256)); }
rtmp {
    server {
        listen $srv_rtmp;
        chunk_size 4096;
        application live { live on; }
    }
}
EOF
		taskset -c "$srvcore" nginx -p "$d" -c "$d/nginx.conf" -e "$out/nginx-$n-error.log" \
			>"$out/nginx-$n.log" 2>&1 &
		srv_pid=$!
		;;
	*) die "unknown server $name" ;;
	esac
	pids+=("$srv_pid")
	waitport "$srv_rtmp" || { cat "$out/$name-$n.log" >&2; die "$name did not listen on $srv_rtmp"; }
	if [ "$name" = mtrelay ]; then waitport "$srv_http" || die "mtrelay did not listen on $srv_http"; fi
}

stop_server() {
	kill "$srv_pid" 2>/dev/null || true
	for _ in $(seq 1 50); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$srv_pid" 2>/dev/null || true
	wait "$srv_pid" 2>/dev/null || true
	srv_pid=""
}

results=()
for n in $players; do
	for name in $servers; do
		if [ "$name" = nginx ] && [ "$proto" != rtmp ]; then
			log "skipping nginx: nginx-rtmp serves RTMP players only"
			continue
		fi
		log "run: $name, $n $proto players, $duration window (load average $(cut -d' ' -f1-3 /proc/loadavg))"
		start_server "$name" "$n"
		json=$out/$name-$n.json
		taskset -c "$loadcore" "$tmp/rtmpload" -json -label "$name" -proto "$proto" \
			-rtmp-addr "$srv_rtmp" -http-addr "$srv_http" -file "$input" \
			-players "$n" -ramp "$ramp" -settle "$settle" -duration "$duration" \
			-server-pid "$srv_pid" >"$json" 2>"$out/rtmpload-$name-$n.log" &
		lpid=$!
		pids+=("$lpid")
		if [ -n "$profile" ] && [ "$name" = mtrelay ] && [ "$n" = "$maxn" ]; then
			# The window starts ramp+settle after rtmpload's "publishing" line.
			for _ in $(seq 1 150); do grep -q publishing "$out/rtmpload-$name-$n.log" 2>/dev/null && break; sleep 0.1; done
			sleep $((ramp_s + settle_s))
			log "profiling mtrelay for $((dur_s - 1)) s"
			curl -sS -m $((dur_s + 20)) -o "$profile" \
				"http://$srv_debug/debug/pprof/profile?seconds=$((dur_s - 1))" || log "profile failed"
		fi
		rc=0
		wait "$lpid" || rc=$?
		stop_server
		if [ "$rc" != 0 ] || ! jq -e . "$json" >/dev/null 2>&1; then
			cat "$out/rtmpload-$name-$n.log" >&2
			die "rtmpload failed against $name with $n players"
		fi
		results+=("$json")
	done
done

# Table: one row per server and player count, then mtrelay/nginx ratios.
echo
echo "compare.sh: $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(uname -r)"
echo "input $input ($(jq -r .stream_mbps "${results[0]}" | xargs printf '%.2f') Mbit/s), proto $proto, ramp $ramp, settle $settle, window $duration; server on core $srvcore, rtmpload on core $loadcore"
fmt='%-8s %5s %9s %7s %7s %8s %7s %7s %7s %7s %8s %9s %8s %8s %7s %7s %7s %8s\n'
# shellcheck disable=SC2059
printf "$fmt" server N conn/fail video% worst% srvCPU% RSS_MB anonMB fileMB HWM_MB ctxsw/s Mbit/s expMbit/s lat50ms lat99ms join50 join90 gap99ms
for j in "${results[@]}"; do
	jq -r '[.label, .players, "\(.connected)/\(.failed)", (.video_delivered_pct*100|round/100),
		(.min_player_video_pct*100|round/100), (.server_cpu_pct*10|round/10), (.server_rss_mb*10|round/10),
		((.server_rss_anon_mb // 0)*10|round/10), ((.server_rss_file_mb // 0)*10|round/10),
		(.server_hwm_mb*10|round/10), ((.server_ctxsw_per_s // 0)|round), (.delivered_mbps|round), (.expected_mbps|round),
		(.latency_ms.p50*10|round/10), (.latency_ms.p99*10|round/10),
		(.join_keyframe_ms.p50|round), (.join_keyframe_ms.p90|round), (.max_gap_ms.p99|round)] | @tsv' "$j" |
		# shellcheck disable=SC2059
		while IFS=$'\t' read -r a b c d e f g g2 g3 h h2 i k l m o p q; do printf "$fmt" "$a" "$b" "$c" "$d" "$e" "$f" "$g" "$g2" "$g3" "$h" "$h2" "$i" "$k" "$l" "$m" "$o" "$p" "$q"; done
done
if [[ " $servers " == *" mtrelay "* && " $servers " == *" nginx "* && "$proto" = rtmp ]]; then
	echo
	echo "ratios mtrelay / nginx (CPU ≤ 1.0 and RSS ≤ 2.0 are the issue's targets)"
	printf '%6s %8s %8s %8s %8s %10s %10s %10s\n' N CPU RSS anon HWM lat50 lat99 join50
	for n in $players; do
		m=$out/mtrelay-$n.json g=$out/nginx-$n.json
		jq -rn --slurpfile m "$m" --slurpfile g "$g" '
			def r(a; b): if b == 0 then "n/a" else ((a / b) * 1000 | round / 1000 | tostring) end;
			[$m[0].players, r($m[0].server_cpu_pct; $g[0].server_cpu_pct), r($m[0].server_rss_mb; $g[0].server_rss_mb),
			 r($m[0].server_rss_anon_mb // 0; $g[0].server_rss_anon_mb // 0), r($m[0].server_hwm_mb; $g[0].server_hwm_mb), r($m[0].latency_ms.p50; $g[0].latency_ms.p50),
			 r($m[0].latency_ms.p99; $g[0].latency_ms.p99), r($m[0].join_keyframe_ms.p50; $g[0].join_keyframe_ms.p50)] | @tsv' |
			while IFS=$'\t' read -r a b c d2 d e f g; do printf '%6s %8s %8s %8s %8s %10s %10s %10s\n' "$a" "$b" "$c" "$d2" "$d" "$e" "$f" "$g"; done
	done
fi
echo
echo "load generator CPU (core $loadcore) per run; a server core busier than the server's CPU% means other processes competed (noisy run):"
for j in "${results[@]}"; do
	jq -r '"  \(.label) N=\(.players): \(.loadgen_cpu_pct*10|round/10)% cpu, cores busy \(.core_busy_pct | map(tostring + "%") | join(" ")) (all processes), publisher late ≤ \(.publisher_late_ms|round) ms, failures \(.fail_reasons | to_entries | map("\(.value)× \(.key)") | join("; ") | if . == "" then "none" else . end)"' "$j"
done
[ -n "$keep" ] && echo "reports and logs in $keep"
exit 0
