# shellcheck shell=bash
# A throw-away three-node MariaDB Galera cluster on loopback for the integration tests.
#
# Source this file, then call:
#   start_galera    three nodes in a temp dir, each on free SQL/group/IST/SST ports; user and db
#   stop_galera     stop the nodes and delete the temp dir (safe to call twice)
# Or run it: `bash tests/galera.sh selftest` starts the cluster, checks it and stops it;
# `bash tests/galera.sh restart-node N` starts node N (1-3) of the running cluster again after a
# test killed it, and waits until it is synced (the cluster is found by CRMSYNC_TEST_GALERA_DIR).
#
# Exported after start_galera:
#   CRMSYNC_TEST_GALERA_URLS  three mysql:// URLs (crmsync user, crmsync_test db), one per node,
#                             separated by spaces
#   CRMSYNC_TEST_GALERA_DIR   the cluster's dir: nN/mysqld.pid holds node N's server pid
#
# start_galera returns non-zero (and prints the node logs) when the cluster does not come up
# within CRMSYNC_DB_START_TIMEOUT seconds per node (default 60).

_crmsync_galera_log() { echo "galera: $*" >&2; }

_crmsync_galera_provider=/usr/lib/galera/libgalera_smm.so

# Starts node N of the cluster in $dir (ports from $dir/ports); `new` bootstraps the cluster,
# `join` joins it by rsync SST (or IST from the donor's cache after a restart).
_crmsync_galera_start_node() {
    local dir=$1 n=$2 mode=${3:-join} sql gcomm ist sst peers=() extra=()
    # shellcheck disable=SC1091
    source "$dir/ports"
    local i
    for i in 1 2 3; do peers+=("127.0.0.1:$(eval echo "\$gcomm_$i")"); done
    sql=$(eval echo "\$sql_$n")
    gcomm=$(eval echo "\$gcomm_$n")
    ist=$(eval echo "\$ist_$n")
    sst=$(eval echo "\$sst_$n")
    [[ $mode == new ]] && extra+=(--wsrep-new-cluster)
    local node=$dir/n$n
    # rsync SST runs as the server's user, so the nodes run as mysql (not root) and own their
    # dirs. A small gcache and no fsync keep the start quick; the data is thrown away anyway.
    (
        IFS=,
        exec /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$node/data" \
            --bind-address=127.0.0.1 --port="$sql" --socket="$node/mysqld.sock" \
            --pid-file="$node/mysqld.pid" --log-error="$node/error.log" \
            --binlog-format=ROW --default-storage-engine=InnoDB --innodb-autoinc-lock-mode=2 \
            --innodb-flush-log-at-trx-commit=2 --innodb-doublewrite=0 --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
            --max-connections=200 --max-allowed-packet=64M --local-infile=1 \
            --character-set-server=utf8mb4 --collation-server=utf8mb4_unicode_ci --skip-name-resolve \
            --wsrep-on=ON --wsrep-provider="$_crmsync_galera_provider" \
            --wsrep-cluster-name=crmsync_test --wsrep-cluster-address="gcomm://${peers[*]}" \
            --wsrep-node-address="127.0.0.1:$gcomm" --wsrep-node-name="n$n" \
            --wsrep-provider-options="gmcast.listen_addr=tcp://127.0.0.1:$gcomm;ist.recv_addr=127.0.0.1:$ist;pc.wait_prim_timeout=PT10S;gcache.size=32M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S;pc.recovery=false" \
            --wsrep-sst-method=rsync --wsrep-sst-receive-address="127.0.0.1:$sst" \
            ${extra[@]+"${extra[@]}"} </dev/null >>"$node/error.log" 2>&1
    ) &
    echo $! >"$node/launcher.pid"
}

# Waits until node N answers and reports wsrep_ready ON; non-zero after the timeout or when the
# server exits.
_crmsync_galera_wait_ready() {
    local dir=$1 n=$2 timeout=${CRMSYNC_DB_START_TIMEOUT:-60} i pid ready
    pid=$(cat "$dir/n$n/launcher.pid" 2>/dev/null)
    for ((i = 0; i < timeout * 5; i++)); do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        ready=$(mariadb --no-defaults --socket="$dir/n$n/mysqld.sock" -uroot --connect-timeout=2 \
            -N -B -e "SHOW STATUS LIKE 'wsrep_ready'" 2>/dev/null | awk '{print $2}')
        [[ $ready == ON ]] && return 0
        sleep 0.2
    done
    return 1
}

_crmsync_galera_fail() {
    local dir=$1 n
    _crmsync_galera_log "$2; node logs:"
    for n in 1 2 3; do
        echo "--- node $n" >&2
        tail -n 40 "$dir/n$n/error.log" >&2 2>/dev/null
    done
}

start_galera() {
    if [[ -n ${_CRMSYNC_GALERA_DIR:-} ]]; then
        _crmsync_galera_log "already running (${CRMSYNC_TEST_GALERA_URLS:-})"
        return 0
    fi
    local dir n port t0=$SECONDS
    if [[ ! -r $_crmsync_galera_provider ]]; then
        _crmsync_galera_log "$_crmsync_galera_provider not found (install galera-4: tests/deps.sh)"
        return 1
    fi
    for port in /usr/sbin/mariadbd /usr/bin/mariadb-install-db /usr/bin/rsync; do
        [[ -x $port ]] || {
            _crmsync_galera_log "$port not found (run tests/deps.sh)"
            return 1
        }
    done
    id mysql >/dev/null 2>&1 || {
        _crmsync_galera_log "system user 'mysql' missing (install mariadb-server)"
        return 1
    }
    dir=$(mktemp -d /tmp/crmsync-galera.XXXXXX) || return 1
    chmod 0755 "$dir"
    _CRMSYNC_GALERA_DIR=$dir
    # Twelve distinct free ports: SQL, group communication, IST and SST per node.
    : >"$dir/ports"
    local used=" "
    for name in sql gcomm ist sst; do
        for n in 1 2 3; do
            port=$(_crmsync_free_port) || return 1
            while [[ $used == *" $port "* ]]; do port=$(_crmsync_free_port) || return 1; done
            used+="$port "
            echo "${name}_$n=$port" >>"$dir/ports"
        done
    done
    for n in 1 2 3; do
        mkdir -p "$dir/n$n/data"
        chown -R mysql: "$dir/n$n"
    done
    # Only the first node needs system tables: the others receive everything by SST.
    if ! /usr/bin/mariadb-install-db --no-defaults --user=mysql --datadir="$dir/n1/data" \
        --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 </dev/null; then
        _crmsync_galera_log "mariadb-install-db failed:"
        cat "$dir/install.log" >&2
        stop_galera
        return 1
    fi
    _crmsync_galera_start_node "$dir" 1 new
    if ! _crmsync_galera_wait_ready "$dir" 1; then
        _crmsync_galera_fail "$dir" "node 1 did not bootstrap the cluster"
        stop_galera
        return 1
    fi
    if ! mariadb --no-defaults --socket="$dir/n1/mysqld.sock" -uroot >"$dir/setup.log" 2>&1 <<'SQL'; then
CREATE USER 'crmsync'@'%' IDENTIFIED BY 'crmsync';
CREATE USER 'crmsync'@'localhost' IDENTIFIED BY 'crmsync';
GRANT ALL PRIVILEGES ON *.* TO 'crmsync'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'crmsync'@'localhost' WITH GRANT OPTION;
CREATE DATABASE crmsync_test CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
SQL
        _crmsync_galera_fail "$dir" "creating user/database failed: $(cat "$dir/setup.log")"
        stop_galera
        return 1
    fi
    # Joining one at a time: two state transfers from one donor would queue anyway.
    for n in 2 3; do
        _crmsync_galera_start_node "$dir" "$n"
        if ! _crmsync_galera_wait_ready "$dir" "$n"; then
            _crmsync_galera_fail "$dir" "node $n did not join the cluster"
            stop_galera
            return 1
        fi
    done
    # shellcheck disable=SC1091
    source "$dir/ports"
    local urls=()
    for n in 1 2 3; do
        urls+=("mysql://crmsync:crmsync@127.0.0.1:$(eval echo "\$sql_$n")/crmsync_test")
    done
    export CRMSYNC_TEST_GALERA_URLS="${urls[*]}"
    export CRMSYNC_TEST_GALERA_DIR=$dir
    _crmsync_galera_log "3 nodes on 127.0.0.1:$sql_1,$sql_2,$sql_3 in $((SECONDS - t0))s (dir $dir)"
}

# Stops node N: a clean shutdown, then KILL after 30 s.
_crmsync_galera_stop_node() {
    local dir=$1 n=$2 pid i
    pid=$(cat "$dir/n$n/mysqld.pid" 2>/dev/null || cat "$dir/n$n/launcher.pid" 2>/dev/null)
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

stop_galera() {
    local dir=${_CRMSYNC_GALERA_DIR:-} n
    [[ -n $dir ]] || return 0
    # Last node first, so no node waits for a departed peer.
    for n in 3 2 1; do _crmsync_galera_stop_node "$dir" "$n"; done
    for n in 1 2 3; do
        local pid
        pid=$(cat "$dir/n$n/launcher.pid" 2>/dev/null)
        if [[ $pid =~ ^[0-9]+$ ]]; then wait "$pid" 2>/dev/null || true; fi
    done
    rm -rf "$dir"
    unset _CRMSYNC_GALERA_DIR CRMSYNC_TEST_GALERA_URLS CRMSYNC_TEST_GALERA_DIR
}

_crmsync_galera_restart_node() {
    local dir=${CRMSYNC_TEST_GALERA_DIR:-} n=$1 pid
    [[ -n $dir && -f $dir/ports && $n =~ ^[1-3]$ ]] || {
        _crmsync_galera_log "restart-node N needs CRMSYNC_TEST_GALERA_DIR of a running cluster and N in 1-3"
        return 2
    }
    pid=$(cat "$dir/n$n/mysqld.pid" 2>/dev/null)
    if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
        _crmsync_galera_wait_ready "$dir" "$n" && return 0
    fi
    # A node killed with -9 leaves a pid file behind; the restart writes a new one.
    rm -f "$dir/n$n/mysqld.pid"
    _crmsync_galera_start_node "$dir" "$n"
    # Started from a shell that exits: the node must outlive it.
    disown -a 2>/dev/null || true
    _crmsync_galera_wait_ready "$dir" "$n" || {
        _crmsync_galera_fail "$dir" "node $n did not rejoin"
        return 1
    }
}

_crmsync_galera_selftest() {
    set -euo pipefail
    trap stop_galera EXIT
    start_galera
    local url port n size
    for url in $CRMSYNC_TEST_GALERA_URLS; do
        port=${url##*:}
        port=${port%%/*}
        MYSQL_PWD=crmsync mariadb --no-defaults --protocol=tcp -h 127.0.0.1 -P "$port" -u crmsync \
            crmsync_test -e 'CREATE TABLE IF NOT EXISTS selftest (id int primary key); REPLACE INTO selftest VALUES (1)'
    done
    for n in 1 2 3; do
        size=$(mariadb --no-defaults --socket="$CRMSYNC_TEST_GALERA_DIR/n$n/mysqld.sock" -uroot -N -B \
            -e "SHOW STATUS LIKE 'wsrep_cluster_size'" | awk '{print $2}')
        [[ $size == 3 ]] || {
            _crmsync_galera_log "node $n sees a cluster of $size"
            return 1
        }
    done
    _crmsync_galera_log "selftest ok: 3 synced nodes accept the crmsync user"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    # shellcheck source=tests/db_servers.sh
    source "$(dirname "${BASH_SOURCE[0]}")/db_servers.sh"
    case "${1:-}" in
        selftest) _crmsync_galera_selftest ;;
        restart-node) _crmsync_galera_restart_node "${2:-}" ;;
        *)
            echo "usage: source tests/galera.sh, then start_galera / stop_galera" >&2
            echo "       bash tests/galera.sh selftest | restart-node N" >&2
            exit 2
            ;;
    esac
fi
