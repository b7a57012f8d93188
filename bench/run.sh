#!/usr/bin/env bash
# `make bench`: measures Linkage against its raw ceilings in one run, on this machine, and writes
# bench/results/<date>.md and .json. See BENCHMARKS.md for what each step measures and why.
#
# Every step runs on a database and a NATS prefix of its own (bench_<stamp>_*), all removed at the
# end, whatever happens. Settings (environment, defaults in brackets):
#   BENCH_CLIENTS [16]        concurrent callers, and pgbench clients
#   BENCH_DURATION [40]       seconds measured per command run (after BENCH_WARMUP [10])
#   BENCH_PGBENCH_SECS [30]   pgbench run length (its first 5 s are left out)
#   BENCH_APPEALS [130000]    appeals in the seeded history (about 1M events; see BENCHMARKS.md)
#   BENCH_QUERY_APPEALS [1000000]  appeals the queries run over: the history's projected ledger
#                             is copied until it holds that many (no copy when ≤ BENCH_APPEALS)
#   BENCH_QUERY_SECS [20]     seconds of query measurement
#   BENCH_QUERY_CLIENTS [2]   concurrent readers (one per core: latency, not queueing)
#   BENCH_RELAY_SECS [15]     seconds the relay is watched draining the history
#   BENCH_PORT_BASE [18080]   command API on it, query API on +1
#   BENCH_CALENDAR            the roles' LINKAGE_CALENDAR (default: the stored calendar, or
#                             weekdays when deadlines from today reach past its last year)
#   BENCH_SKIP_BUILD [0]      1: use the release binaries as they are
#   BENCH_OUT [bench/results] where the report goes
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CLIENTS=${BENCH_CLIENTS:-16}
DURATION=${BENCH_DURATION:-40}
WARMUP=${BENCH_WARMUP:-10}
PGBENCH_SECS=${BENCH_PGBENCH_SECS:-30}
APPEALS=${BENCH_APPEALS:-130000}
QUERY_APPEALS=${BENCH_QUERY_APPEALS:-1000000}
QUERY_SECS=${BENCH_QUERY_SECS:-20}
QUERY_CLIENTS=${BENCH_QUERY_CLIENTS:-2}
RELAY_SECS=${BENCH_RELAY_SECS:-15}
PORT_BASE=${BENCH_PORT_BASE:-18080}
OUT=${BENCH_OUT:-bench/results}
# The live commands' deadlines reach up to about 60 days ahead (10 working days, extensions,
# rework). When that crosses past the last year of the stored official calendar, the stored
# calendar would refuse them (a year not published is an error, never a guess), so the run uses
# Monday-Friday instead and says so in the report.
if [[ -z ${BENCH_CALENDAR:-} ]]; then
    covered=$(sed -n 's/^# Covered years: [0-9]*-\([0-9]*\).*/\1/p' shared/domain/data/cn-calendar.csv)
    if [[ -n $covered && $(date -u -d '+60 days' +%Y) -gt $covered ]]; then
        BENCH_CALENDAR=weekdays
        echo "[bench] the official calendar ends with $covered and deadlines from today reach into $((covered + 1)): the live roles run with LINKAGE_CALENDAR=weekdays" >&2
    fi
fi
CALENDAR_ENV=()
if [[ -n ${BENCH_CALENDAR:-} ]]; then CALENDAR_ENV=(LINKAGE_CALENDAR="$BENCH_CALENDAR"); fi

started=$(date +%s)
log() { printf '[bench %4ss] %s\n' "$(($(date +%s) - started))" "$*" >&2; }

eval "$(bash deploy/local/services.sh env)"
bash deploy/local/services.sh ensure >&2

STAMP=$(date -u +%Y%m%dt%H%M%S)
DATE=$(date -u +%Y-%m-%d)
RUN=bench_${STAMP}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/linkage-bench.XXXXXX")
PARTS=$WORK/parts
mkdir -p "$PARTS" "$OUT"
BIN=$ROOT/target/release/linkage
LOADGEN=$ROOT/target/release/linkage-loadgen
SERVER_URL=${DATABASE_URL%/*}
db_url() { echo "$SERVER_URL/$1"; }

# Processes this script started (pid → role), databases and stream prefixes to remove.
declare -A ROLE_OF=()
DATABASES=()
PREFIXES=()
declare -A RSS=()

cleanup() {
    local rc=$?
    for pid in "${!ROLE_OF[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${!ROLE_OF[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    for db in "${DATABASES[@]}"; do
        psql -q "$(db_url postgres)" -c "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
    for prefix in "${PREFIXES[@]}"; do
        "$LOADGEN" delete-stream --prefix "$prefix" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
    exit $rc
}
trap cleanup EXIT INT TERM

# Peak resident memory of a running process, in KiB.
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# start_role NAME ROLE ENV... : starts `linkage ROLE` with the given environment, logging under
# $WORK; its pid is left in STARTED.
start_role() {
    local name=$1 role=$2
    shift 2
    # The per-caller rate limit is off: a few tokens stand for the many callers of a district.
    env LINKAGE_RATE_LIMIT_PER_SECOND=0 "$@" RUST_LOG=warn "$BIN" "$role" >"$WORK/$name.log" 2>&1 &
    STARTED=$!
    ROLE_OF[$STARTED]=$name
}

# stop PID: records its peak RSS under its name, then stops it and waits.
stop_role() {
    local pid=$1
    RSS[${ROLE_OF[$pid]}]=$(hwm "$pid")
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    unset "ROLE_OF[$pid]"
}

wait_ready() {
    local url=$1 pid=$2
    for _ in $(seq 1 300); do
        if curl -fs -o /dev/null "$url"; then return 0; fi
        if ! kill -0 "$pid" 2>/dev/null; then
            log "process $pid exited; its log:"; cat "$WORK/${ROLE_OF[$pid]}.log" >&2; return 1
        fi
        sleep 0.1
    done
    log "$url not ready after 30 s"; return 1
}

fresh_db() {
    local db=$1
    DATABASES+=("$db")
    DATABASE_URL=$(db_url "$db") "$BIN" migrate >/dev/null 2>"$WORK/migrate-$db.log" \
        || { cat "$WORK/migrate-$db.log" >&2; return 1; }
}

# ---------------------------------------------------------------------------------------------
log "building release binaries (cached builds take seconds)"
build_started=$(date +%s)
if [[ ${BENCH_SKIP_BUILD:-0} != 1 ]]; then cargo build --release -q -p linkage -p linkage-loadgen; fi
BUILD_SECS=$(($(date +%s) - build_started))

# ---------------------------------------------------------------------------------------------
log "ceiling: pgbench, the append transaction, $CLIENTS clients, ${PGBENCH_SECS}s"
fresh_db "${RUN}_pgbench"
# Payloads the size of the mix's events (ContactRecorded and AppealFiled as the API stores them).
PAYLOAD='{"at": "2026-11-23T02:15:07.123456Z", "note": "已与诉求人取得联系", "method": "phone", "department": "market-supervision"}'
FILED_PAYLOAD='{"at": "2026-11-23T02:15:07.123456Z", "town": "经济开发区", "filer": {"kind": "enterprise", "name": "某某精密机械有限公司01234", "phone": "13812345678", "contact_person": "王经理"}, "channel": "12345", "category": "arbitrary_inspections", "appeal_id": "019ab0f2-6c1e-7d2a-9a43-5b8f0d3e2c11", "description": "同一周内三个部门先后上门检查，影响正常生产。", "complained_unit": "某街道综合执法队7", "tracking_number": "LK-2026-000123"}'
METADATA='{"role": "handler", "actor": "loadgen-handler", "command": "contact", "department": "market-supervision", "request_id": "019ab0f2-6c1e-7d2a-9a43-5b8f0d3e2c11", "correlation_id": "019ab0f2-6c1e-7d2a-9a43-5b8f0d3e2c11"}'
(cd "$WORK" && pgbench -n -M prepared -c "$CLIENTS" -j 2 -T "$PGBENCH_SECS" \
    -l --log-prefix="$WORK/pgbench" \
    -f "$ROOT/bench/pgbench/file.sql@1" -f "$ROOT/bench/pgbench/append.sql@7" \
    -D appeals=1000 -D payload="$PAYLOAD" -D filed_payload="$FILED_PAYLOAD" -D metadata="$METADATA" \
    "$(db_url "${RUN}_pgbench")" >"$WORK/pgbench.out" 2>&1) \
    || { cat "$WORK/pgbench.out" >&2; exit 1; }
"$LOADGEN" pgbench-summary --log-prefix "$WORK/pgbench" --clients "$CLIENTS" --warmup-secs 5 \
    --out "$PARTS/pgbench.json"
psql -q "$(db_url postgres)" -c "DROP DATABASE \"${RUN}_pgbench\" WITH (FORCE)"
log "pgbench: $(jq -r '"\(.tps|floor) tx/s, p99 \(.latency.p99_ms) ms"' "$PARTS/pgbench.json")"

# ---------------------------------------------------------------------------------------------
log "commands: every role as its own process on ${RUN}_live"
fresh_db "${RUN}_live"
PREFIXES+=("${RUN}_live")
CMD_ADDR=127.0.0.1:$PORT_BASE
QUERY_ADDR=127.0.0.1:$((PORT_BASE + 1))
ROLE_ENV=(DATABASE_URL="$(db_url "${RUN}_live")" NATS_URL="$NATS_URL" LINKAGE_NATS_PREFIX="${RUN}_live"
          LINKAGE_JWT_SECRET="$LINKAGE_JWT_SECRET" "${CALENDAR_ENV[@]}"
          LINKAGE_COMMAND_API_ADDR="$CMD_ADDR" LINKAGE_QUERY_API_ADDR="$QUERY_ADDR")
start_role command-api command-api "${ROLE_ENV[@]}"; cmd_pid=$STARTED
start_role relay relay "${ROLE_ENV[@]}"; relay_pid=$STARTED
start_role projector projector "${ROLE_ENV[@]}"; projector_pid=$STARTED
start_role query-api query-api "${ROLE_ENV[@]}"; query_pid=$STARTED
wait_ready "http://$CMD_ADDR/readyz" "$cmd_pid"
wait_ready "http://$QUERY_ADDR/readyz" "$query_pid"

log "commands: closed loop, $CLIENTS clients, ${WARMUP}s + ${DURATION}s"
# No lag probes at max throughput: the lag target is at half load (measured below), and probes
# would add query API work on the same two cores to the commands being measured. The relay and
# the projector run all the same.
"$LOADGEN" commands --command-url "http://$CMD_ADDR" --query-url "http://$QUERY_ADDR" \
    --clients "$CLIENTS" --warmup-secs "$WARMUP" --duration-secs "$DURATION" --seed 1 --lag-every 0 \
    --out "$PARTS/commands_max.json"
MAX_RATE=$(jq '.commands_per_sec' "$PARTS/commands_max.json")
HALF_RATE=$(jq -n "$MAX_RATE / 2")
log "commands: max $(printf %.0f "$MAX_RATE")/s; open loop at $(printf %.0f "$HALF_RATE")/s"
"$LOADGEN" commands --command-url "http://$CMD_ADDR" --query-url "http://$QUERY_ADDR" \
    --rate "$HALF_RATE" --warmup-secs "$WARMUP" --duration-secs "$DURATION" --seed 2 \
    --out "$PARTS/commands_half.json"
log "commands: half load lag p99 $(jq '.lag.p99_ms' "$PARTS/commands_half.json") ms"
for pid in "$cmd_pid" "$relay_pid" "$projector_pid" "$query_pid"; do stop_role "$pid"; done
psql -q "$(db_url postgres)" -c "DROP DATABASE \"${RUN}_live\" WITH (FORCE)"

# ---------------------------------------------------------------------------------------------
HISTORY=${RUN}_history
log "history: seeding $APPEALS appeals into $HISTORY"
fresh_db "$HISTORY"
HISTORY_URL=$(db_url "$HISTORY")
"$LOADGEN" seed --database-url "$HISTORY_URL" --appeals "$APPEALS" --calendar official \
    --out "$PARTS/seed.json"
log "history: $(jq -r '"\(.events) events, \(.events_per_sec|floor) events/s"' "$PARTS/seed.json")"

log "rebuild: linkage projections rebuild ledger"
DATABASE_URL=$HISTORY_URL RUST_LOG=warn "$BIN" projections rebuild ledger \
    >"$PARTS/rebuild.json" 2>"$WORK/rebuild.log" &
rebuild_pid=$!
ROLE_OF[$rebuild_pid]="projections rebuild"
peak=0
while kill -0 "$rebuild_pid" 2>/dev/null; do
    now=$(hwm "$rebuild_pid"); [[ ${now:-0} -gt $peak ]] && peak=$now
    sleep 0.2
done
wait "$rebuild_pid" || { cat "$WORK/rebuild.log" >&2; exit 1; }
unset "ROLE_OF[$rebuild_pid]"
RSS["projections rebuild ledger"]=$peak
log "rebuild: $(jq -r '"\(.events) events in \(.elapsed.secs) s"' "$PARTS/rebuild.json")"

log "relay: draining the history to JetStream for ${RELAY_SECS}s"
PREFIXES+=("${HISTORY}")
start_role "relay (draining history)" relay DATABASE_URL="$HISTORY_URL" NATS_URL="$NATS_URL" \
    LINKAGE_NATS_PREFIX="$HISTORY" LINKAGE_JWT_SECRET="$LINKAGE_JWT_SECRET"
relay_pid=$STARTED
"$LOADGEN" relay-rate --database-url "$HISTORY_URL" --window-secs "$RELAY_SECS" --out "$PARTS/relay.json"
stop_role "$relay_pid"
"$LOADGEN" delete-stream --prefix "$HISTORY"

MESSAGE_BYTES=$(jq '.mean_envelope_bytes | floor' "$PARTS/relay.json")
log "ceiling: JetStream publish-with-ack, $MESSAGE_BYTES B messages"
PREFIXES+=("${RUN}_raw")
"$LOADGEN" publish --prefix "${RUN}_raw" --message-bytes "$MESSAGE_BYTES" --duration-secs 10 \
    --out "$PARTS/jetstream_raw.json"

# Audit export / verify (`linkage audit`) are measured once the binary has them.
if "$BIN" audit --help >/dev/null 2>&1; then
    log "audit: export and verify"
    for step in export verify; do
        t0=$(date +%s.%N)
        DATABASE_URL=$HISTORY_URL RUST_LOG=warn "$BIN" audit "$step" >"$WORK/audit-$step.out" 2>"$WORK/audit-$step.log" \
            || { cat "$WORK/audit-$step.log" >&2; exit 1; }
        t1=$(date +%s.%N)
        events=$(jq '.events' "$PARTS/seed.json")
        jq -n --argjson events "$events" --argjson secs "$(awk "BEGIN {print $t1 - $t0}")" \
            '{events: $events, elapsed_secs: $secs}' >"$PARTS/audit_$step.json"
    done
else
    log "audit: \`linkage audit\` is not available in this build; reported as not yet available"
fi

# The queries run over QUERY_APPEALS appeals: seeding and rebuilding 1M appeals (≈ 7.7M events)
# does not fit the run, so the projected ledger of the history is copied (new ids and tracking
# numbers, instants shifted; the mix's distributions unchanged) until it holds that many. The
# audit above ran on the history as seeded; the copy touches only the ledger's tables.
if (( QUERY_APPEALS > APPEALS )); then
    log "queries: copying the projected ledger to $QUERY_APPEALS appeals"
    "$LOADGEN" scale-ledger --database-url "$HISTORY_URL" --appeals "$QUERY_APPEALS" \
        --out "$PARTS/scale_ledger.json"
fi

log "queries: query API over the seeded history"
start_role "query-api (seeded history)" query-api DATABASE_URL="$HISTORY_URL" \
    LINKAGE_JWT_SECRET="$LINKAGE_JWT_SECRET" LINKAGE_QUERY_API_ADDR="$QUERY_ADDR"
query_pid=$STARTED
wait_ready "http://$QUERY_ADDR/readyz" "$query_pid"
ROUTES=()
# Rates and rankings (issue: read models for rates and rankings) are measured once they exist.
for route in "rates=/api/v1/rates?month=2026-06" "rankings=/api/v1/rankings?period=2026-Q2"; do
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $("$BIN" token issue --role analyst)" \
        "http://$QUERY_ADDR${route#*=}")
    if [[ $status == 200 ]]; then ROUTES+=(--route "$route"); else log "queries: ${route%%=*} not measured (HTTP $status)"; fi
done
"$LOADGEN" queries --query-url "http://$QUERY_ADDR" --duration-secs "$QUERY_SECS" "${ROUTES[@]}" \
    --clients "$QUERY_CLIENTS" --out "$PARTS/queries.json"
stop_role "$query_pid"

# ---------------------------------------------------------------------------------------------
rss_json='{}'
for name in "${!RSS[@]}"; do
    rss_json=$(jq --arg k "$name" --argjson v "${RSS[$name]:-0}" '. + {($k): $v}' <<<"$rss_json")
done
echo "$rss_json" >"$PARTS/rss.json"

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
mem=$(awk '/^MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)
pg=$(psql -tA "$(db_url postgres)" -c 'SHOW server_version')
pg_memory=$(psql -tA "$(db_url postgres)" -c "SELECT 'shared_buffers ' || current_setting('shared_buffers') || ', max_wal_size ' || current_setting('max_wal_size')")
commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- 2>/dev/null || echo "+dirty")
total=$(($(date +%s) - started))
jq -n --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg commit "$commit" \
    --arg machine "$(nproc) × $cpu, $mem RAM, PostgreSQL $pg (fsync on, synchronous_commit on, $pg_memory), $(nats-server --version 2>/dev/null || echo 'NATS') JetStream file storage, all on one host" \
    --arg settings "Settings: $CLIENTS clients, ${DURATION}s measured after ${WARMUP}s warm-up, pgbench ${PGBENCH_SECS}s, $APPEALS seeded appeals (queries over $(( QUERY_APPEALS > APPEALS ? QUERY_APPEALS : APPEALS ))), calendar ${BENCH_CALENDAR:-stored}. Whole run ${total}s (release build ${BUILD_SECS}s of it)." \
    '{date: $date, commit: $commit, machine: $machine, settings: $settings}' >"$PARTS/meta.json"

"$LOADGEN" report --parts "$PARTS" --json "$OUT/$DATE.json" --markdown "$OUT/$DATE.md"
cat "$OUT/$DATE.md"
log "report: $OUT/$DATE.md and $OUT/$DATE.json"
