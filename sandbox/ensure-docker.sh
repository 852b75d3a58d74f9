#!/usr/bin/env bash
# Make Docker usable for the code sandbox, idempotently, so `make test` works on a fresh machine:
#   1. install docker.io (and debootstrap, which builds the image) from Debian if missing;
#   2. start dockerd in the background if no daemon answers;
#   3. build the sandbox runner image locally (no registry) unless it already exists.
# Needs root (or sudo) only for steps 1 and 2, and only when there is something to do.
set -euo pipefail

PY=${PY:-.venv/bin/python}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/rlvr-dockerd.log}

log() { echo "ensure-docker: $*" >&2; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else log "root is needed to run: $*"; exit 1
    fi
}

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian"
    as_root apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

wait_for_daemon() {
    for _ in $(seq "$1"); do
        docker info >/dev/null 2>&1 && return 0
        sleep 0.5
    done
    return 1
}

if ! docker info >/dev/null 2>&1; then
    log "no Docker daemon answers; starting dockerd (log: $DOCKERD_LOG)"
    pid=$(as_root sh -c "setsid nohup dockerd >'$DOCKERD_LOG' 2>&1 </dev/null & echo \$!")
    if ! wait_for_daemon 60; then
        # The sandbox needs no network at all (containers run with --network none), so a machine
        # whose bridge or iptables set-up fails can still run it without them.
        log "dockerd did not answer within 30 s; retrying without a bridge network or iptables"
        as_root kill "$pid" 2>/dev/null || true
        sleep 1
        as_root sh -c "setsid nohup dockerd --bridge=none --iptables=false >>'$DOCKERD_LOG' 2>&1 </dev/null &"
        if ! wait_for_daemon 60; then
            log "dockerd did not answer; last lines of $DOCKERD_LOG:"
            tail -n 20 "$DOCKERD_LOG" >&2 || true
            exit 1
        fi
    fi
fi

"$PY" -m sandbox.image
