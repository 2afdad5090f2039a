# shellcheck shell=bash
# Throw-away PostgreSQL and MariaDB servers for the integration tests and benchmarks.
#
# Source this file, then call:
#   start_postgres    initdb into a temp dir, listen on 127.0.0.1:<free port>, role and database
#   start_mariadb     mariadb-install-db into a temp dir, listen on 127.0.0.1:<free port>, user and db
#   start_mariadb_lctn  a second MariaDB like it, with lower_case_table_names=1 (see there)
#   stop_db_servers   stop whichever are running and delete their temp dirs (safe to call twice)
#
# Exported after start_postgres:
#   CRMSYNC_TEST_POSTGRES_URL   postgres://crmsync:crmsync@127.0.0.1:PORT/crmsync_test
#   CRMSYNC_TEST_PG_BIN         the server's bin dir (psql, pg_ctl, ... of the same major version)
#   CRMSYNC_TEST_PG_SOCKET_DIR  unix socket dir (superuser "postgres" connects there without password)
# Exported after start_mariadb:
#   CRMSYNC_TEST_MYSQL_URL      mysql://crmsync:crmsync@127.0.0.1:PORT/crmsync_test
#   CRMSYNC_TEST_MYSQL_SOCKET   unix socket (root connects there without password)
# Exported after start_mariadb_lctn:
#   CRMSYNC_TEST_MYSQL_LCTN_URL mysql://crmsync:crmsync@127.0.0.1:PORT/crmsync_test
#
# start_postgres runs the server with fsync, synchronous_commit and full_page_writes off, and
# start_mariadb with innodb_flush_log_at_trx_commit=2 and innodb_doublewrite off (tests need no
# durability). Settings for benchmarks:
#   CRMSYNC_TEST_PG_DURABLE=1   keep PostgreSQL's own defaults for them instead (a production server)
#   CRMSYNC_TEST_PG_PRELOAD     a shared library the server processes preload (LD_PRELOAD)
#   CRMSYNC_TEST_MY_DURABLE=1, CRMSYNC_TEST_MY_PRELOAD   the same for MariaDB
#
# The start functions return non-zero (and print the server log) when the server does not come up
# within CRMSYNC_DB_START_TIMEOUT seconds (default 60). Executed directly,
# `bash tests/db_servers.sh selftest` starts both, connects with the clients and stops them.

_crmsync_db_log() { echo "db_servers: $*" >&2; }

# Prints a TCP port on 127.0.0.1 that nothing listens on right now. Another process may take it
# before the server binds it, so callers retry on a failed start.
_crmsync_free_port() {
    local port i
    if command -v python3 >/dev/null 2>&1 &&
        port=$(python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])' 2>/dev/null) && [[ $port =~ ^[0-9]+$ ]]; then
        echo "$port"
        return 0
    fi
    for ((i = 0; i < 200; i++)); do
        port=$((20000 + RANDOM % 40000))
        # A refused connection means nobody listens there.
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    _crmsync_db_log "no free TCP port found"
    return 1
}

# A temp dir the given user can reach (TMPDIR may point into root's home).
_crmsync_mktemp_dir() {
    local prefix=$1 dir parent=${TMPDIR:-/tmp}
    if [[ ! -d $parent ]] || ! runuser -u postgres -- test -x "$parent" 2>/dev/null; then
        parent=/tmp
    fi
    dir=$(mktemp -d "$parent/$prefix.XXXXXX") || return 1
    chmod 0755 "$dir"
    echo "$dir"
}

_crmsync_pg_bindir() {
    local dir ver best="" bestver=0
    if [[ -n ${CRMSYNC_PG_BIN:-} && -x ${CRMSYNC_PG_BIN}/postgres ]]; then
        echo "$CRMSYNC_PG_BIN"
        return 0
    fi
    for dir in /usr/lib/postgresql/*/bin; do
        [[ -x $dir/postgres && -x $dir/initdb ]] || continue
        ver=${dir#/usr/lib/postgresql/}
        ver=${ver%%/*}
        [[ $ver =~ ^[0-9]+$ ]] || continue
        if ((ver > bestver)); then
            bestver=$ver
            best=$dir
        fi
    done
    if [[ -z $best ]] && command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir 2>/dev/null)
        [[ -x $dir/postgres ]] && best=$dir
    fi
    [[ -n $best ]] || {
        _crmsync_db_log "no PostgreSQL server found under /usr/lib/postgresql/*/bin (run tests/deps.sh)"
        return 1
    }
    echo "$best"
}

start_postgres() {
    if [[ -n ${_CRMSYNC_PG_DIR:-} ]]; then
        _crmsync_db_log "postgres already running (${CRMSYNC_TEST_POSTGRES_URL:-})"
        return 0
    fi
    local bin dir port attempt timeout=${CRMSYNC_DB_START_TIMEOUT:-60} started=0
    bin=$(_crmsync_pg_bindir) || return 1
    id postgres >/dev/null 2>&1 || {
        _crmsync_db_log "system user 'postgres' missing (install the postgresql package)"
        return 1
    }
    dir=$(_crmsync_mktemp_dir crmsync-pg) || return 1
    chown postgres: "$dir"
    _CRMSYNC_PG_DIR=$dir
    _CRMSYNC_PG_BIN=$bin

    # postgres refuses to run as root, so everything runs as the postgres user. Superuser
    # "postgres" is trusted on the unix socket only; TCP needs a password (scram-sha-256).
    if ! runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres -E UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1; then
        _crmsync_db_log "initdb failed:"
        cat "$dir/initdb.log" >&2
        stop_postgres
        return 1
    fi

    local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    [[ ${CRMSYNC_TEST_PG_DURABLE:-} == 1 ]] && durability=""
    local -a preload=()
    [[ -n ${CRMSYNC_TEST_PG_PRELOAD:-} ]] && preload=("LD_PRELOAD=$CRMSYNC_TEST_PG_PRELOAD")
    for attempt in 1 2 3; do
        port=$(_crmsync_free_port) || break
        if runuser -u postgres -- env "${preload[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t "$timeout" \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir $durability -c max_connections=200" \
            start </dev/null >"$dir/pg_ctl.log" 2>&1; then
            started=1
            break
        fi
        # A port taken between the probe and the bind is worth another try; anything else is not.
        grep -qi 'could not bind\|address already in use' "$dir/server.log" 2>/dev/null || break
        _crmsync_db_log "postgres: port $port taken, retrying ($attempt)"
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    done
    if ((!started)); then
        _crmsync_db_log "postgres failed to start (or was not ready within ${timeout}s); pg_ctl output and server log:"
        cat "$dir/pg_ctl.log" "$dir/server.log" >&2 2>/dev/null
        stop_postgres
        return 1
    fi
    _CRMSYNC_PG_PORT=$port

    if ! runuser -u postgres -- "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$port" -U postgres \
        -d postgres >"$dir/setup.log" 2>&1 <<'SQL'; then
CREATE ROLE crmsync LOGIN SUPERUSER PASSWORD 'crmsync';
CREATE DATABASE crmsync_test OWNER crmsync ENCODING 'UTF8' TEMPLATE template0;
SQL
        _crmsync_db_log "postgres: creating role/database failed:"
        cat "$dir/setup.log" "$dir/server.log" >&2 2>/dev/null
        stop_postgres
        return 1
    fi

    export CRMSYNC_TEST_POSTGRES_URL="postgres://crmsync:crmsync@127.0.0.1:$port/crmsync_test"
    export CRMSYNC_TEST_PG_BIN=$bin
    export CRMSYNC_TEST_PG_SOCKET_DIR=$dir
    _crmsync_db_log "postgres $("$bin/postgres" -V | awk '{print $3}') on 127.0.0.1:$port (data $dir)"
}

stop_postgres() {
    local dir=${_CRMSYNC_PG_DIR:-} bin=${_CRMSYNC_PG_BIN:-} pid i
    [[ -n $dir ]] || return 0
    if [[ -f $dir/data/postmaster.pid ]]; then
        runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
        if [[ -f $dir/data/postmaster.pid ]]; then
            pid=$(head -n 1 "$dir/data/postmaster.pid" 2>/dev/null)
            if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
                kill -QUIT "$pid" 2>/dev/null || true
                for ((i = 0; i < 50; i++)); do
                    kill -0 "$pid" 2>/dev/null || break
                    sleep 0.1
                done
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
    fi
    rm -rf "$dir"
    unset _CRMSYNC_PG_DIR _CRMSYNC_PG_BIN _CRMSYNC_PG_PORT
    unset CRMSYNC_TEST_POSTGRES_URL CRMSYNC_TEST_PG_BIN CRMSYNC_TEST_PG_SOCKET_DIR
}

_crmsync_mariadb_cmd() {
    local c
    for c in "$@"; do
        if command -v "$c" >/dev/null 2>&1; then
            command -v "$c"
            return 0
        fi
        [[ -x /usr/sbin/$c ]] && {
            echo "/usr/sbin/$c"
            return 0
        }
    done
    return 1
}

start_mariadb() {
    if [[ -n ${_CRMSYNC_MY_DIR:-} ]]; then
        _crmsync_db_log "mariadb already running (${CRMSYNC_TEST_MYSQL_URL:-})"
        return 0
    fi
    local server install admin client dir port attempt i pid started=0 extra=()
    local timeout=${CRMSYNC_DB_START_TIMEOUT:-60}
    # One more server option, for start_mariadb_lctn.
    [[ -n ${_CRMSYNC_MY_EXTRA_OPTION:-} ]] && extra+=("$_CRMSYNC_MY_EXTRA_OPTION")
    if ! server=$(_crmsync_mariadb_cmd mariadbd mysqld) ||
        ! install=$(_crmsync_mariadb_cmd mariadb-install-db mysql_install_db) ||
        ! admin=$(_crmsync_mariadb_cmd mariadb-admin mysqladmin) ||
        ! client=$(_crmsync_mariadb_cmd mariadb mysql); then
        _crmsync_db_log "MariaDB server/client not found (run tests/deps.sh)"
        return 1
    fi
    dir=$(_crmsync_mktemp_dir crmsync-my) || return 1
    _CRMSYNC_MY_DIR=$dir
    _CRMSYNC_MY_ADMIN=$admin
    _CRMSYNC_MY_SOCKET=$dir/mysqld.sock

    # --no-defaults: ignore /etc/mysql (its socket, log paths and bind-address belong to the
    # system service). Running as root needs --user=root.
    if ! "$install" --no-defaults --user=root --datadir="$dir/data" ${extra[@]+"${extra[@]}"} \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 </dev/null; then
        _crmsync_db_log "mariadb-install-db failed:"
        cat "$dir/install.log" >&2
        stop_mariadb
        return 1
    fi

    local -a durability=(--innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0) preload=()
    [[ ${CRMSYNC_TEST_MY_DURABLE:-} == 1 ]] && durability=()
    [[ -n ${CRMSYNC_TEST_MY_PRELOAD:-} ]] && preload=("LD_PRELOAD=$CRMSYNC_TEST_MY_PRELOAD")
    for attempt in 1 2 3; do
        port=$(_crmsync_free_port) || break
        : >"$dir/error.log"
        env ${preload[@]+"${preload[@]}"} "$server" --no-defaults --user=root --datadir="$dir/data" \
            --bind-address=127.0.0.1 --port="$port" --socket="$_CRMSYNC_MY_SOCKET" \
            --pid-file="$dir/mysqld.pid" --log-error="$dir/error.log" \
            --skip-log-bin ${durability[@]+"${durability[@]}"} \
            --local-infile=1 --max-allowed-packet=64M --max-connections=200 \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci \
            --skip-name-resolve ${extra[@]+"${extra[@]}"} </dev/null >>"$dir/error.log" 2>&1 &
        pid=$!
        _CRMSYNC_MY_PID=$pid
        for ((i = 0; i < timeout * 5; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            if "$admin" --no-defaults --socket="$_CRMSYNC_MY_SOCKET" -uroot --connect-timeout=2 \
                ping >/dev/null 2>&1; then
                started=1
                break 2
            fi
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then break; fi # alive but not answering: give up
        grep -qi 'already in use\|do you already have another' "$dir/error.log" || break
        _crmsync_db_log "mariadb: port $port taken, retrying ($attempt)"
        unset _CRMSYNC_MY_PID
    done
    if ((!started)); then
        if [[ -n ${_CRMSYNC_MY_PID:-} ]] && kill -0 "$_CRMSYNC_MY_PID" 2>/dev/null; then
            _crmsync_db_log "mariadb did not answer within ${timeout}s; server log:"
        else
            _crmsync_db_log "mariadb failed to start; server log:"
        fi
        cat "$dir/error.log" >&2 2>/dev/null
        stop_mariadb
        return 1
    fi
    _CRMSYNC_MY_PORT=$port

    if ! "$client" --no-defaults --socket="$_CRMSYNC_MY_SOCKET" -uroot >"$dir/setup.log" 2>&1 <<'SQL'; then
CREATE USER 'crmsync'@'%' IDENTIFIED BY 'crmsync';
CREATE USER 'crmsync'@'localhost' IDENTIFIED BY 'crmsync';
GRANT ALL PRIVILEGES ON *.* TO 'crmsync'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'crmsync'@'localhost' WITH GRANT OPTION;
CREATE DATABASE crmsync_test CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
FLUSH PRIVILEGES;
SQL
        _crmsync_db_log "mariadb: creating user/database failed:"
        cat "$dir/setup.log" "$dir/error.log" >&2 2>/dev/null
        stop_mariadb
        return 1
    fi

    export CRMSYNC_TEST_MYSQL_URL="mysql://crmsync:crmsync@127.0.0.1:$port/crmsync_test"
    export CRMSYNC_TEST_MYSQL_SOCKET=$_CRMSYNC_MY_SOCKET
    _crmsync_db_log "mariadb $("$server" --version | awk '{print $3}') on 127.0.0.1:$port (data $dir)"
}

stop_mariadb() {
    local dir=${_CRMSYNC_MY_DIR:-} pid=${_CRMSYNC_MY_PID:-} i
    [[ -n $dir ]] || return 0
    # The pid file names the running server when it is not the one started here (a test that
    # crashes the server starts it again).
    if [[ ! $pid =~ ^[0-9]+$ ]] || ! kill -0 "$pid" 2>/dev/null; then
        [[ -f $dir/mysqld.pid ]] && pid=$(cat "$dir/mysqld.pid" 2>/dev/null)
    fi
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        "${_CRMSYNC_MY_ADMIN:-mariadb-admin}" --no-defaults --socket="$_CRMSYNC_MY_SOCKET" -uroot \
            --connect-timeout=5 shutdown >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true # reap it when it is our child
    fi
    rm -rf "$dir"
    unset _CRMSYNC_MY_DIR _CRMSYNC_MY_PID _CRMSYNC_MY_PORT _CRMSYNC_MY_ADMIN _CRMSYNC_MY_SOCKET
    unset CRMSYNC_TEST_MYSQL_URL CRMSYNC_TEST_MYSQL_SOCKET
}

# A second MariaDB, started as start_mariadb starts its own but with lower_case_table_names=1,
# the default of MySQL and MariaDB on Windows (macOS has 2): table names are stored lower-cased
# and compared without case, so a table crmsync creates as "Mixed_Case_contacts" is listed back
# as "mixed_case_contacts". Runs beside the first; stop_mariadb_lctn (or stop_db_servers) stops it.
start_mariadb_lctn() {
    if [[ -n ${_CRMSYNC_MY_LCTN_DIR:-} ]]; then
        _crmsync_db_log "mariadb (lower_case_table_names=1) already running"
        return 0
    fi
    local started
    # start_mariadb in a subshell, so that its state does not replace the first server's; the
    # server it starts outlives the subshell.
    started=$(
        unset _CRMSYNC_MY_DIR _CRMSYNC_MY_PID _CRMSYNC_MY_PORT _CRMSYNC_MY_SOCKET
        _CRMSYNC_MY_EXTRA_OPTION=--lower-case-table-names=1
        start_mariadb >&2 && echo "$_CRMSYNC_MY_DIR $CRMSYNC_TEST_MYSQL_URL"
    ) || return 1
    _CRMSYNC_MY_LCTN_DIR=${started%% *}
    export CRMSYNC_TEST_MYSQL_LCTN_URL=${started#* }
}

stop_mariadb_lctn() {
    [[ -n ${_CRMSYNC_MY_LCTN_DIR:-} ]] || return 0
    (
        _CRMSYNC_MY_DIR=$_CRMSYNC_MY_LCTN_DIR
        _CRMSYNC_MY_SOCKET=$_CRMSYNC_MY_LCTN_DIR/mysqld.sock
        unset _CRMSYNC_MY_PID # found in its pid file
        stop_mariadb
    )
    unset _CRMSYNC_MY_LCTN_DIR CRMSYNC_TEST_MYSQL_LCTN_URL
}

stop_db_servers() {
    stop_postgres
    stop_mariadb_lctn
    stop_mariadb
}

_crmsync_db_selftest() {
    set -euo pipefail
    trap stop_db_servers EXIT
    start_postgres
    start_mariadb
    local myport=${CRMSYNC_TEST_MYSQL_URL##*:}
    myport=${myport%%/*}
    local pgport=${CRMSYNC_TEST_POSTGRES_URL##*:}
    pgport=${pgport%%/*}
    PGPASSWORD=crmsync "$CRMSYNC_TEST_PG_BIN/psql" -X -At -h 127.0.0.1 -p "$pgport" -U crmsync \
        -d crmsync_test -c 'select current_user, current_database(), version()' >/dev/null
    MYSQL_PWD=crmsync mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P "$myport" -u crmsync \
        crmsync_test -e 'select current_user(), database(), version()' >/dev/null
    _crmsync_db_log "selftest ok: both servers accept the crmsync user over 127.0.0.1"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    case "${1:-}" in
        selftest) _crmsync_db_selftest ;;
        *)
            echo "usage: source tests/db_servers.sh, then start_postgres / start_mariadb / stop_db_servers" >&2
            echo "       bash tests/db_servers.sh selftest" >&2
            exit 2
            ;;
    esac
fi
