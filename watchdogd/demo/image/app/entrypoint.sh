#!/bin/sh
# PID 1. busybox httpd as PID 1 ignores SIGTERM, so this shell runs it and exits on TERM
# (`docker stop` is immediate). USR1 is the crash fault: the container dies with status 70.
mkdir -p /tmp/metrics /tmp/tokens /tmp/calls
pid=""
trap '[ -n "$pid" ] && kill "$pid"; exit 0' TERM INT
trap 'echo "demo app: crashing on the first /api request (fault: crash)" >&2; exit 70' USR1
echo "demo app ${APP_VERSION} (fault: ${APP_FAULT}) on :8080"
httpd -f -p 8080 -h /www &
pid=$!
# `wait` returns early when a trapped signal arrives; loop until httpd is really gone.
while kill -0 "$pid" 2>/dev/null; do
    wait "$pid"
done
