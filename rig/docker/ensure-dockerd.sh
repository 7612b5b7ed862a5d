#!/usr/bin/env bash
# Make sure a Docker engine answers, for CI and for people: install docker.io when it
# is missing, start dockerd in the background when none is running, and wait for it
# with a bound.  Prints where dockerd logs.  Leaves a running engine alone.
set -euo pipefail
cache="${EQLISCSI_CACHE:-/var/cache/eqliscsi}/docker"
timeout="${EQLISCSI_DOCKERD_TIMEOUT:-60}"
mkdir -p "$cache"

if docker info >/dev/null 2>&1; then
  echo "ensure-dockerd: engine already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi
if ! command -v dockerd >/dev/null 2>&1 && [ ! -x /usr/sbin/dockerd ]; then
  echo "ensure-dockerd: installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi
if [ -n "${DOCKER_HOST:-}" ]; then
  echo "ensure-dockerd: DOCKER_HOST=$DOCKER_HOST does not answer; start it or unset DOCKER_HOST" >&2
  exit 1
fi
log="$cache/dockerd.log"
# setsid: the engine must outlive this script and the CI step that ran it.
setsid /usr/sbin/dockerd >>"$log" 2>&1 </dev/null &
pid=$!
echo "ensure-dockerd: started dockerd pid $pid, log $log"
start=$(date +%s)
while ! docker info >/dev/null 2>&1; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "ensure-dockerd: dockerd exited while starting; read $log" >&2
    exit 1
  fi
  if (( $(date +%s) - start >= timeout )); then
    echo "ensure-dockerd: dockerd did not answer within ${timeout}s; read $log" >&2
    exit 1
  fi
  sleep 0.5
done
echo "ensure-dockerd: engine $(docker version --format '{{.Server.Version}}') ready after $(( $(date +%s) - start )) s"
