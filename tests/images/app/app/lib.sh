# Sourced by every CGI script under /www/cgi-bin. The caller sets HANDLER first.
APP_VERSION="${APP_VERSION:-v1}"

# Centiseconds since boot, from /proc/uptime ("12345.67" -> "1234567").
uptime_cs() {
    read -r up _ < /proc/uptime
    echo "${up%.*}${up#*.}"
}
START_CS=$(uptime_cs)

# The current mode: /tmp/mode (switched at run time) wins over $APP_MODE (baked per tag).
current_mode() {
    m=""
    [ -f /tmp/mode ] && read -r m < /tmp/mode
    [ -n "$m" ] || m="${APP_MODE:-ok}"
    echo "$m"
}
MODE=$(current_mode)

slow_if_needed() {
    [ "$MODE" = slow ] && sleep "${APP_SLOW_SECONDS:-3}"
    return 0
}

# Read the request body (POST) into BODY.
read_body() {
    BODY=""
    if [ -n "${CONTENT_LENGTH:-}" ] && [ "${CONTENT_LENGTH}" -gt 0 ] 2>/dev/null; then
        BODY=$(head -c "$CONTENT_LENGTH")
    fi
}

# The bearer token of the request, or "" when absent or malformed.
bearer_token() {
    t="${HTTP_AUTHORIZATION:-}"
    case "$t" in
        "Bearer "*) t="${t#Bearer }" ;;
        *) t="" ;;
    esac
    case "$t" in
        tok-*[!a-z0-9-]* | "") echo "" ;;
        tok-*) echo "$t" ;;
        *) echo "" ;;
    esac
}

# A tiny lock (no flock in busybox-static): mkdir is atomic; steal after ~1 s.
lock() {
    i=0
    while ! mkdir /tmp/metrics/.lock 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 200 ]; then
            rmdir /tmp/metrics/.lock 2>/dev/null
            i=0
        fi
        usleep 5000
    done
}
unlock() { rmdir /tmp/metrics/.lock 2>/dev/null; }

incr() {
    v=0
    [ -f "$1" ] && read -r v < "$1"
    echo $((v + ${2:-1})) > "$1"
}

# Count the request and observe its duration in the histogram.
record() {
    status="$1"
    end=$(uptime_cs)
    ms=$(((end - START_CS) * 10))
    lock
    incr "/tmp/metrics/req/${HANDLER}__${status}"
    for b in 5 10 25 50 100 250 500 1000 2500 5000 10000; do
        [ "$ms" -le "$b" ] && incr "/tmp/metrics/hist/${HANDLER}__${b}"
    done
    incr "/tmp/metrics/hist/${HANDLER}__count"
    incr "/tmp/metrics/hist/${HANDLER}__sum_ms" "$ms"
    unlock
}

status_text() {
    case "$1" in
        200) echo "OK" ;;
        401) echo "Unauthorized" ;;
        404) echo "Not Found" ;;
        405) echo "Method Not Allowed" ;;
        500) echo "Internal Server Error" ;;
        503) echo "Service Unavailable" ;;
        *) echo "Status" ;;
    esac
}

# respond STATUS CONTENT_TYPE BODY
respond() {
    printf 'Status: %s %s\r\nContent-Type: %s\r\nCache-Control: no-store\r\nX-App-Version: %s\r\nX-App-Mode: %s\r\n\r\n%s\n' \
        "$1" "$(status_text "$1")" "$2" "$APP_VERSION" "$MODE" "$3"
    [ "${NO_RECORD:-}" = 1 ] || record "$1"
}

respond_json() { respond "$1" application/json "$2"; }

error_json() {
    respond_json "$1" "{\"error\":\"$2\",\"version\":\"$APP_VERSION\"}"
}
