#!/usr/bin/env bash
# Start Dask worker process(es) on this host and join them to a scheduler.
#
#   cluster/plain/start-worker.sh [options] [tcp://SCHEDULER_HOST:8786] [-- extra `dask worker` args]
#
# Every option can also be set through the environment variable in brackets.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: start-worker.sh [options] [SCHEDULER_ADDRESS] [-- extra dask-worker args]

  SCHEDULER_ADDRESS         e.g. tcp://sched-host:8786      [DASK_SCHEDULER_ADDRESS]

Options (environment variable in brackets):
  --nthreads N              threads per worker process      [BIGQUANT_NTHREADS, default: dask picks]
  --nworkers N              worker processes on this host   [BIGQUANT_NWORKERS, default 1]
  --memory-limit SIZE       memory limit per process, e.g. 8GiB, 0.9 or auto
                                                            [BIGQUANT_MEMORY_LIMIT, default auto]
  --local-directory DIR     fast node-local scratch for spilled data
                                                            [BIGQUANT_LOCAL_DIRECTORY, default: dask's temp dir]
  --name NAME               worker name (-0, -1, ... appended with --nworkers > 1)
                                                            [BIGQUANT_WORKER_NAME]
  --interface IFACE         network interface, e.g. ib0     [BIGQUANT_INTERFACE]
  --scheduler-file FILE     read the scheduler address from FILE instead
                                                            [BIGQUANT_SCHEDULER_FILE]
  --dry-run                 print the command instead of running it
  -h, --help                show this help
EOF
}

scheduler="${DASK_SCHEDULER_ADDRESS:-}"
nthreads="${BIGQUANT_NTHREADS:-}"
nworkers="${BIGQUANT_NWORKERS:-1}"
memory_limit="${BIGQUANT_MEMORY_LIMIT:-auto}"
local_directory="${BIGQUANT_LOCAL_DIRECTORY:-}"
name="${BIGQUANT_WORKER_NAME:-}"
interface="${BIGQUANT_INTERFACE:-}"
scheduler_file="${BIGQUANT_SCHEDULER_FILE:-}"
dry_run=0
extra=()

need_value() {
    if [[ $# -lt 2 || -z "$2" ]]; then
        echo "start-worker.sh: $1 needs a value" >&2
        exit 2
    fi
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        --nthreads) need_value "$@"; nthreads="$2"; shift 2 ;;
        --nworkers) need_value "$@"; nworkers="$2"; shift 2 ;;
        --memory-limit) need_value "$@"; memory_limit="$2"; shift 2 ;;
        --local-directory) need_value "$@"; local_directory="$2"; shift 2 ;;
        --name) need_value "$@"; name="$2"; shift 2 ;;
        --interface) need_value "$@"; interface="$2"; shift 2 ;;
        --scheduler-file) need_value "$@"; scheduler_file="$2"; shift 2 ;;
        --dry-run) dry_run=1; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; extra=("$@"); break ;;
        -*) echo "start-worker.sh: unknown option: $1" >&2; usage >&2; exit 2 ;;
        *) scheduler="$1"; shift ;;
    esac
done

if [[ -z "$scheduler" && -z "$scheduler_file" ]]; then
    echo "start-worker.sh: give the scheduler address (tcp://HOST:8786)," \
         "set DASK_SCHEDULER_ADDRESS, or pass --scheduler-file" >&2
    exit 2
fi

cmd=(dask worker)
if [[ -n "$scheduler_file" ]]; then
    cmd+=(--scheduler-file "$scheduler_file")
else
    cmd+=("$scheduler")
fi
cmd+=(--nworkers "$nworkers" --memory-limit "$memory_limit")
[[ -n "$nthreads" ]] && cmd+=(--nthreads "$nthreads")
[[ -n "$local_directory" ]] && cmd+=(--local-directory "$local_directory")
[[ -n "$name" ]] && cmd+=(--name "$name")
[[ -n "$interface" ]] && cmd+=(--interface "$interface")
# ${extra[@]+...} keeps `set -u` happy with an empty array on bash < 4.4.
cmd+=(${extra[@]+"${extra[@]}"})

if [[ "$dry_run" -eq 1 ]]; then
    printf '%q ' "${cmd[@]}"
    printf '\n'
    exit 0
fi

[[ -n "$local_directory" ]] && mkdir -p "$local_directory"
echo "Starting: ${cmd[*]}" >&2
exec "${cmd[@]}"
