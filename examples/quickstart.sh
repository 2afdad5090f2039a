#!/usr/bin/env bash
# crmsync in two minutes: build it, start the bundled Dialfire emulator with 200 contacts, sync the
# campaign into SQLite (./crmsync-demo.db in the repository root), look at the rows, then sync again
# to see an incremental run that finds nothing new. Needs root (or sudo) only to install packages.
#
#   examples/quickstart.sh
#
# CRMSYNC_BUILD_DIR overrides the build directory (default build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

build_dir=${CRMSYNC_BUILD_DIR:-build}
campaign=DEMO0000CAMPAIGN
token=demo-token
db="crmsync-demo.db"
say() { printf '\n==> %s\n' "$*"; }

say "Installing build dependencies (tests/deps.sh --runtime)"
bash tests/deps.sh --runtime

say "Building crmsync and the Dialfire emulator into $build_dir/"
cmake -S . -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j2 --target crmsync dialfire_fake

crmsync=$build_dir/crmsync
fake=$build_dir/tests/fakes/dialfire_fake
for f in "$crmsync" "$fake"; do
    [[ -x $f ]] || {
        echo "quickstart: error: $f was not built" >&2
        exit 1
    }
done

tmp=$(mktemp -d -t crmsync-quickstart.XXXXXX)
fake_pid=
cleanup() {
    if [[ -n $fake_pid ]] && kill -0 "$fake_pid" 2>/dev/null; then
        kill -TERM "$fake_pid" 2>/dev/null || true
        wait "$fake_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "Starting the Dialfire emulator (campaign $campaign, 200 contacts)"
"$fake" --port 0 --port-file "$tmp/port" --contacts 200 --campaign "$campaign" --token "$token" \
    </dev/null >"$tmp/fake.log" 2>&1 &
fake_pid=$!
port=
for ((i = 0; i < 150; i++)); do
    if [[ -s $tmp/port ]]; then
        port=$(tr -dc '0-9' <"$tmp/port")
        [[ -n $port ]] && break
    fi
    kill -0 "$fake_pid" 2>/dev/null || break
    sleep 0.2
done
if [[ -z $port ]]; then
    echo "quickstart: error: the emulator did not report its port; its log:" >&2
    cat "$tmp/fake.log" >&2
    exit 1
fi
api_url=http://127.0.0.1:$port
echo "emulator listening on $api_url"

# Exit 0 is success, 3 is success with rejected records (the summary says which); anything else
# is a failure.
run_sync() {
    local rc=0
    echo "\$ CRMSYNC_TOKEN=*** $crmsync db_sync --campaign $campaign --api-url $api_url --url sqlite://$db"
    CRMSYNC_TOKEN=$token "$crmsync" db_sync --campaign "$campaign" --api-url "$api_url" \
        --url "sqlite://$db" </dev/null || rc=$?
    case $rc in
        0) ;;
        3) echo "(exit 3: done, but some records were rejected; see the summary above)" ;;
        *)
            echo "quickstart: error: crmsync exited with $rc; emulator log:" >&2
            tail -n 20 "$tmp/fake.log" >&2
            exit "$rc"
            ;;
    esac
}

if [[ -e $db ]]; then
    echo "removing the previous demo database $db"
    rm -f "$db" "$db-wal" "$db-shm" "$db-journal"
fi

say "First sync: creates the tables and loads the whole campaign"
run_sync

say "What landed in $db"
tables=(dfire_contacts dfire_transactions dfire_connections dfire_recordings dfire_inbound_calls)
query=
for t in "${tables[@]}"; do
    exists=$(sqlite3 "$db" "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='$t'")
    if [[ $exists == 1 ]]; then
        query+="${query:+ UNION ALL }SELECT '$t' AS \"table\", count(*) AS \"rows\" FROM \"$t\""
    else
        echo "(no table $t)"
    fi
done
[[ -n $query ]] && sqlite3 -header -column "$db" "$query;"

echo
echo "five transactions:"
sqlite3 -header -column "$db" \
    'SELECT id, contact_id, fired, task, status FROM dfire_transactions ORDER BY fired, id LIMIT 5;' ||
    echo "(could not read dfire_transactions)"

say "Second sync: incremental, starts from the stored checkpoint and finds nothing new"
run_sync

say "Done"
cat <<EOF
The database is $root/$db; open it with: sqlite3 $db
Against a real campaign:
  CRMSYNC_TOKEN=... $crmsync db_sync --campaign <CAMPAIGN_ID> --url sqlite://crmsync.db
See examples/crontab.example and examples/crmsync-db-sync.{service,timer} to run it every minute.
EOF
