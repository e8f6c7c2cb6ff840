#!/usr/bin/env bash
# Start a Dask scheduler for bigquant on this host.
#
#   cluster/plain/start-scheduler.sh [options] [-- extra `dask scheduler` args]
#
# Every option can also be set through the environment variable in brackets.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: start-scheduler.sh [options] [-- extra dask-scheduler args]

Options (environment variable in brackets):
  --port PORT               scheduler port                 [BIGQUANT_SCHEDULER_PORT, default 8786]
  --dashboard-address ADDR  dashboard address              [BIGQUANT_DASHBOARD_ADDRESS, default :8787]
  --host HOST               address to bind/advertise      [BIGQUANT_SCHEDULER_HOST, default: dask picks]
  --interface IFACE         network interface, e.g. ib0    [BIGQUANT_INTERFACE]
  --scheduler-file FILE     also write connection info to FILE (on a shared file system)
                                                           [BIGQUANT_SCHEDULER_FILE]
  --dry-run                 print the command instead of running it
  -h, --help                show this help

Workers then join with:  start-worker.sh tcp://THIS_HOST:PORT
EOF
}

port="${BIGQUANT_SCHEDULER_PORT:-8786}"
dashboard_address="${BIGQUANT_DASHBOARD_ADDRESS:-:8787}"
host="${BIGQUANT_SCHEDULER_HOST:-}"
interface="${BIGQUANT_INTERFACE:-}"
scheduler_file="${BIGQUANT_SCHEDULER_FILE:-}"
dry_run=0
extra=()

need_value() {
    if [[ $# -lt 2 || -z "$2" ]]; then
        echo "start-scheduler.sh: $1 needs a value" >&2
        exit 2
    fi
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --port) need_value "$@"; port="$2"; shift 2 ;;
        --dashboard-address) need_value "$@"; dashboard_address="$2"; shift 2 ;;
        --host) need_value "$@"; host="$2"; shift 2 ;;
        --interface) need_value "$@"; interface="$2"; shift 2 ;;
        --scheduler-file) need_value "$@"; scheduler_file="$2"; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "start-scheduler.sh: unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

cmd=(dask scheduler --port "$port" --dashboard-address "$dashboard_address")
[[ -n "$host" ]] && cmd+=(--host "$host")
[[ -n "$interface" ]] && cmd+=(--interface "$interface")
[[ -n "$scheduler_file" ]] && cmd+=(--scheduler-file "$scheduler_file")
# ${extra[@]+...} keeps `set -u` happy with an empty array on bash < 4.4.
cmd+=(${extra[@]+"${extra[@]}"})

if [[ "$dry_run" -eq 1 ]]; then
    printf '%q ' "${cmd[@]}"
    printf '\n'
    exit 0
fi

echo "Starting: ${cmd[*]}" >&2
echo "Workers join with: start-worker.sh tcp://$(hostname -f 2>/dev/null || hostname):${port}" >&2
exec "${cmd[@]}"
