#!/usr/bin/env bash
# Writes crmsync(1) in roff from the binary's own --help texts, so the page never drifts from
# the flags.   make_manpage.sh CRMSYNC_BINARY OUTPUT_FILE
set -euo pipefail
bin=$1
out=$2

# roff treats a leading '.' or "'" as a request and '\' as an escape.
escape() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }

version=$("$bin" --version)
top=$("$bin" --help)
commands=$(printf '%s\n' "$top" | awk '/^Subcommands:/ {on = 1; next} on && /^  [^ ]/ {print $1}')
[[ -n $commands ]] || { echo "make_manpage.sh: no subcommands in '$bin --help'" >&2; exit 1; }
date=$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%d)

{
    printf '.TH CRMSYNC 1 "%s" "%s" "User Commands"\n' "$date" "$version"
    printf '.SH NAME\ncrmsync \\- sync contact-center and CRM data into SQL databases and web services\n'
    printf '.SH SYNOPSIS\n.B crmsync\n.I COMMAND\n[\\fIOPTIONS\\fR]\n.br\n'
    printf '.B crmsync\n\\-\\-help | \\-\\-version\n'
    printf '.SH DESCRIPTION\n'
    printf 'A one-shot command: each run fetches what changed since the last run, writes it, prints a\n'
    printf 'one-line summary and exits with a code that cron and CI can act on. Every run picks up\n'
    printf 'where the last one stopped; a killed run loses nothing and duplicates nothing.\n'
    printf 'dbsync2 command lines (\\fB\\-\\-a db_sync\\fR ...) are accepted unchanged.\n'
    printf '.PP\n.nf\n'
    printf '%s\n' "$top" | escape
    printf '.fi\n.SH COMMANDS\n'
    for c in $commands; do
        printf '.SS %s\n.nf\n' "$c"
        "$bin" "$c" --help | escape
        printf '.fi\n'
    done
    cat <<'ROFF'
.SH EXIT STATUS
.TP
.B 0
done
.TP
.B 1
failed; nothing past the last good checkpoint was claimed, the next run resumes from it
.TP
.B 2
bad flags, URL or configuration; no I/O was done
.TP
.B 3
done, but records were rejected or work was left for the next run (see the summary)
.TP
.B 4
skipped: another run of the same job holds its lock
.TP
.B 130
interrupted by SIGINT or SIGTERM, after committing the batch in flight
.SH ENVIRONMENT
.TP
.B CRMSYNC_TOKEN
the Dialfire campaign token (or \fB\-\-token\-file\fR); never give secrets on the command line
.TP
.B CRMSYNC_SMTP_PASSWORD
the SMTP password for \fB\-\-notify\-smtp\fR
.TP
.B CRMSYNC_DB_PASSWORD
the database password, when the \fB\-\-url\fR carries none
.TP
.B CRMSYNC_API_URL, CRMSYNC_PORTAL_URL, CRMSYNC_CALLCENTER_API_URL
API base URLs (tests and private deployments)
.TP
.B CRMSYNC_CALLCENTER_USER, CRMSYNC_CALLCENTER_SECRET
call-center service credentials
.TP
.B CRMSYNC_GOOGLE_TOKEN_URL, CRMSYNC_ZOHO_ACCOUNTS_URL
OAuth token endpoints
.TP
.B DBSYNC_*
dbsync2's variables (DBSYNC_A, DBSYNC_C, DBSYNC_URL, ...) are read as dbsync2 read them
.SH FILES
.TP
.I $XDG_STATE_HOME/crmsync/state.db
the state file: OAuth accounts, webhook outbox, error episodes, checkpoints of jobs without a SQL
target (\fB\-\-state\fR)
.TP
.I /var/log/crmsync/, ~/.crmsync/logs/
log files, one per job (\fB\-\-log\-dir\fR)
.TP
.I /usr/share/doc/crmsync/examples/
crontab, systemd timer and quickstart examples
.SH SEE ALSO
.BR cron (8),
.BR systemd.timer (5)
ROFF
} >"$out.tmp"
mv "$out.tmp" "$out"
