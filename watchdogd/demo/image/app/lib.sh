# Sourced by every CGI script; the caller sets HANDLER first. Counters live in files under
# /tmp, guarded by a mkdir lock (busybox-static has no flock).
APP_VERSION="${APP_VERSION:-v1}"
FAULT="${APP_FAULT:-none}"

uptime_cs() {
    read -r up _ < /proc/uptime
    echo "${up%.*}${up#*.}"
}
START_CS=$(uptime_cs)

lock() {
    i=0
    while ! mkdir /tmp/.lock 2>/dev/null; do
        i=$((i + 1))
        # A holder killed mid-update would block everyone: steal the lock after ~1 s.
        [ "$i" -gt 200 ] && rmdir /tmp/.lock 2>/dev/null && i=0
        usleep 5000
    done
}
unlock() { rmdir /tmp/.lock 2>/dev/null; }

incr() {
    v=0
    [ -f "$1" ] && read -r v < "$1"
    v=$((v + ${2:-1}))
    echo "$v" > "$1"
}

# The number of calls to this handler so far, this one included.
call_number() {
    lock
    incr "/tmp/calls/$HANDLER"
    unlock
    echo "$v"
}

# The histogram's bucket bounds, in milliseconds.
BUCKETS="5 10 25 50 100 250 500 1000 2000 3000 5000 10000"

# seconds MS: sets $secs to MS milliseconds as seconds (1500 -> 1.5, 5 -> 0.005); a variable,
# not output, so that /metrics forks nothing per bucket.
seconds() {
    frac=$(($1 % 1000))
    case ${#frac} in 1) frac="00$frac" ;; 2) frac="0$frac" ;; esac
    while [ "${frac%0}" != "$frac" ]; do frac="${frac%0}"; done
    secs="$(($1 / 1000))${frac:+.$frac}"
}

# Count the request and observe its duration, in milliseconds: one file per bucket, which
# /metrics adds up into Prometheus' cumulative buckets. Four writes under the lock, not
# fourteen: on a loaded host every request waits for it.
record() {
    ms=$((($(uptime_cs) - START_CS) * 10))
    bucket=inf
    for b in $BUCKETS; do
        if [ "$ms" -le "$b" ]; then bucket=$b; break; fi
    done
    lock
    incr "/tmp/metrics/req__${HANDLER}__$1"
    incr "/tmp/metrics/hist__${HANDLER}__$bucket"
    incr "/tmp/metrics/hist__${HANDLER}__count"
    incr "/tmp/metrics/hist__${HANDLER}__sum" "$ms"
    unlock
}

# respond STATUS JSON
respond() {
    printf 'Status: %s\r\nContent-Type: application/json\r\n\r\n%s\n' "$1" "$2"
    record "$1"
}

bearer_token() {
    case "${HTTP_AUTHORIZATION:-}" in
        "Bearer tok-"*) t="${HTTP_AUTHORIZATION#Bearer }" ;;
        *) t="" ;;
    esac
    case "$t" in
        *[!a-z0-9-]*) echo "" ;;
        *) echo "$t" ;;
    esac
}
