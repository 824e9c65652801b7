#!/bin/sh
# PID 1 of the test app. busybox httpd as PID 1 ignores SIGTERM, so a shell
# runs it as a child and exits on TERM/INT: `docker stop` takes well under 1 s.
mkdir -p /tmp/metrics/req /tmp/metrics/hist /tmp/tokens
# Pre-create the main series so that rate() sees their first increment.
for h in api health; do
    for s in 200 500; do
        [ -f "/tmp/metrics/req/${h}__${s}" ] || echo 0 > "/tmp/metrics/req/${h}__${s}"
    done
    [ -f "/tmp/metrics/hist/${h}__count" ] || echo 0 > "/tmp/metrics/hist/${h}__count"
done

pid=""
stop() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    exit 0
}
trap stop TERM INT

# An app that takes a while to boot (APP_BOOT_SECONDS) refuses connections meanwhile. The
# sleep runs in the background so that `docker stop` is not held up by it.
if [ "${APP_BOOT_SECONDS:-0}" != 0 ]; then
    sleep "$APP_BOOT_SECONDS" &
    pid=$!
    wait "$pid"
    pid=""
fi

echo "watchdogd test app ${APP_VERSION} (mode ${APP_MODE}) listening on :${APP_PORT:-8080}"
httpd -f -p "${APP_PORT:-8080}" -h /www &
pid=$!
wait "$pid"
