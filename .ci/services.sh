# shellcheck shell=bash
# Helpers for .ci/run (sourced): packages, the Docker engine, cleanup.
#
# Only the Docker engine is started here, because it is system-wide. Redis, PostgreSQL,
# Prometheus and Alertmanager are started by the pytest fixtures (tests/support/services.py)
# as private instances on free 127.0.0.1 ports, so the tests behave the same on a laptop.

# Debian packages the tests need. python3-venv only matters when python3 is Debian's own
# (pyenv's Python has venv built in); haproxy is started by the traffic tests
# (tests/support/haproxy.py); wrk and the blackbox exporter serve benchmarks/probes;
# curl runs the documented API calls (tests/docs).
CI_PACKAGES=(
    docker.io
    prometheus
    prometheus-alertmanager
    prometheus-blackbox-exporter
    redis-server
    postgresql
    busybox-static
    docker-compose
    haproxy
    wrk
    curl
    make
    python3-venv
    ca-certificates
    systemd
)

CI_DOCKERD_LOG=${CI_DOCKERD_LOG:-/var/log/dockerd.log}
CI_DOCKER_PIDFILE=${CI_DOCKER_PIDFILE:-/var/run/docker.pid}
CI_CONTAINERD_PIDFILE=${CI_CONTAINERD_PIDFILE:-/var/run/docker/containerd/containerd.pid}
CI_STARTED_DOCKERD=""
CI_POLICY_RC_D=""

ci_log() {
    printf '\n\033[1m==> %s\033[0m\n' "$*"
}

ci_die() {
    printf '\n\033[1;31mFAIL: %s\033[0m\n' "$*" >&2
    exit 1
}

ci_missing_packages() {
    local pkg
    for pkg in "${CI_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
            echo "$pkg"
        fi
    done
}

ci_install_packages() {
    local missing attempt
    mapfile -t missing < <(ci_missing_packages)
    if [ "${#missing[@]}" -eq 0 ]; then
        ci_log "Debian packages: all ${#CI_PACKAGES[@]} already installed"
        return 0
    fi
    ci_log "Debian packages: installing ${missing[*]}"
    [ "$(id -u)" -eq 0 ] || ci_die "installing packages needs root"
    export DEBIAN_FRONTEND=noninteractive
    # Keep maintainer scripts from starting redis/postgresql/prometheus/docker as system
    # services: the tests start their own instances and .ci/run starts dockerd itself.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        CI_POLICY_RC_D=/usr/sbin/policy-rc.d
    fi
    for attempt in 1 2 3; do
        if apt-get update -q; then
            break
        fi
        [ "$attempt" -lt 3 ] || ci_die "apt-get update failed"
        sleep $((attempt * 5))
    done
    for attempt in 1 2 3; do
        if apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}"; then
            break
        fi
        [ "$attempt" -lt 3 ] || ci_die "apt-get install failed"
        sleep $((attempt * 5))
    done
    ci_remove_policy_rc_d
    mapfile -t missing < <(ci_missing_packages)
    [ "${#missing[@]}" -eq 0 ] || ci_die "still missing after install: ${missing[*]}"
}

ci_remove_policy_rc_d() {
    if [ -n "$CI_POLICY_RC_D" ]; then
        rm -f "$CI_POLICY_RC_D"
        CI_POLICY_RC_D=""
    fi
}

# Remove a pid file whose process is gone or is not the named program (pid reuse).
ci_remove_stale_pidfile() {
    local pidfile=$1 comm=$2 pid
    [ -f "$pidfile" ] || return 0
    pid=$(cat "$pidfile" 2>/dev/null || true)
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "$comm" ]; then
        return 0
    fi
    echo "removing stale $pidfile (pid '${pid}')"
    rm -f "$pidfile"
}

ci_docker_ready() {
    docker info >/dev/null 2>&1
}

ci_wait_docker() {
    local seconds=$1 i
    for ((i = 0; i < seconds; i++)); do
        ci_docker_ready && return 0
        sleep 1
    done
    return 1
}

ci_start_dockerd() {
    if ci_docker_ready; then
        ci_log "Docker engine: already running ($(docker info --format '{{.ServerVersion}}' 2>/dev/null))"
        return 0
    fi
    if [ -n "${DOCKER_HOST:-}" ]; then
        ci_die "DOCKER_HOST=$DOCKER_HOST does not answer; not starting a local engine"
    fi
    ci_remove_stale_pidfile "$CI_DOCKER_PIDFILE" dockerd
    ci_remove_stale_pidfile "$CI_CONTAINERD_PIDFILE" containerd
    if [ -f "$CI_DOCKER_PIDFILE" ]; then
        ci_log "Docker engine: dockerd (pid $(cat "$CI_DOCKER_PIDFILE")) is starting; waiting"
        ci_wait_docker 60 || ci_die "dockerd (pid $(cat "$CI_DOCKER_PIDFILE")) does not answer"
        return 0
    fi
    ci_log "Docker engine: starting dockerd (log: $CI_DOCKERD_LOG)"
    setsid dockerd --host unix:///var/run/docker.sock >>"$CI_DOCKERD_LOG" 2>&1 </dev/null &
    CI_STARTED_DOCKERD=$!
    if ! ci_wait_docker 60; then
        tail -n 40 "$CI_DOCKERD_LOG" >&2 || true
        ci_die "dockerd did not answer within 60 s"
    fi
    echo "dockerd $(docker info --format '{{.ServerVersion}}, storage {{.Driver}}, cgroup v{{.CgroupVersion}}') is up (pid $CI_STARTED_DOCKERD)"
}

# Whether a pytest session (the value of the label watchdogd.test.session, "<pid>-<hex>")
# is over. Objects without that label count as over only while no pytest runs here, so a
# concurrent test run on the same engine keeps its containers.
ci_session_over() {
    local session=$1 pid
    if [ -z "$session" ] || [ "$session" = "<no value>" ]; then
        ! pgrep -f 'pytest' >/dev/null 2>&1
        return
    fi
    pid=${session%%-*}
    case "$pid" in '' | *[!0-9]*) return 1 ;; esac
    ! kill -0 "$pid" 2>/dev/null
}

# Remove what tests labelled watchdogd.test=1 and left behind after their session ended
# (the fixtures clean up after themselves; this is the safety net for a killed run).
ci_cleanup_docker() {
    ci_docker_ready || return 0
    local filter=label=watchdogd.test=1 key='{{.Label "watchdogd.test.session"}}'
    local kind id session ref
    if [ "$(docker info --format '{{.Swarm.ControlAvailable}}' 2>/dev/null)" = "true" ]; then
        while read -r id; do
            [ -n "$id" ] || continue
            session=$(docker service inspect -f '{{index .Spec.Labels "watchdogd.test.session"}}' "$id" 2>/dev/null || true)
            ci_session_over "$session" || continue
            echo "removing leftover service $id"
            docker service rm "$id" >/dev/null 2>&1 || true
        done < <(docker service ls -q --filter "$filter" 2>/dev/null || true)
    fi
    while read -r id session; do
        [ -n "$id" ] || continue
        ci_session_over "$session" || continue
        echo "removing leftover container $id"
        docker rm -f -v "$id" >/dev/null 2>&1 || true
    done < <(docker ps -a --filter "$filter" --format "{{.ID}} $key" 2>/dev/null || true)
    for kind in network volume; do
        while read -r id session; do
            [ -n "$id" ] || continue
            ci_session_over "$session" || continue
            echo "removing leftover $kind $id"
            docker "$kind" rm "$id" >/dev/null 2>&1 || true
        done < <(docker "$kind" ls --filter "$filter" --format "{{.Name}} $key" 2>/dev/null || true)
    done
    # Test images: tags of a session's repository watchdogd-test/app-<session>, and
    # untagged leftovers; never forced, so an image in use stays.
    while read -r ref id; do
        [ -n "$ref" ] || continue
        case "$ref" in
            watchdogd-test/app-*:*)
                session=${ref#watchdogd-test/app-}
                ci_session_over "${session%%:*}" || continue
                ;;
            "<none>:<none>") ref=$id ;;
            *) continue ;;
        esac
        echo "removing leftover image $ref"
        docker rmi "$ref" >/dev/null 2>&1 || true
    done < <(docker images --filter "$filter" --format '{{.Repository}}:{{.Tag}} {{.ID}}' 2>/dev/null || true)
}

ci_stop_dockerd() {
    [ -n "$CI_STARTED_DOCKERD" ] || return 0
    if [ -n "${CI_KEEP_DOCKERD:-}" ]; then
        echo "leaving dockerd (pid $CI_STARTED_DOCKERD) running (CI_KEEP_DOCKERD is set)"
        return 0
    fi
    # Tests that stop and start the engine (test_engine_outage, the soak) leave another pid:
    # the one the pid file names now.
    local pid=$CI_STARTED_DOCKERD current i
    current=$(cat "$CI_DOCKER_PIDFILE" 2>/dev/null || true)
    if [ -n "$current" ] && [ "$(cat "/proc/$current/comm" 2>/dev/null)" = dockerd ]; then
        pid=$current
    fi
    echo "stopping the dockerd this script started (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 30; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 1
    done
    kill -KILL "$pid" 2>/dev/null || true
}
