# watchdogd as a container, e.g. a sidecar beside the app it watches (docs/sidecar.md).
#
# The build is offline: the context carries watchdogd and every dependency as wheels in
# dist/wheels/ (`pip wheel --wheel-dir dist/wheels .` on a machine that can reach PyPI or a
# mirror); nothing is downloaded here. The base is a build argument because there is no
# registry on some hosts: any image with `python3` (3.11 or newer) and pip on PATH will do,
# e.g. python:3.11-slim-bookworm or one made locally (tests/packaging/test_sidecar.py).
# Only exec-form instructions are used, so the base needs no shell.
#
#   pip wheel --wheel-dir dist/wheels .
#   docker build --build-arg BASE=python:3.11-slim-bookworm -t watchdogd .
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS build
COPY dist/wheels/ /tmp/wheels/
# A venv keeps watchdogd's dependencies apart from the base's own packages; only the venv
# goes on to the final stage, not the wheels.
RUN ["python3", "-m", "venv", "--without-pip", "/opt/watchdogd"]
RUN ["python3", "-m", "pip", "--python", "/opt/watchdogd/bin/python", "install", \
     "--no-index", "--find-links=/tmp/wheels", "--no-cache-dir", "--disable-pip-version-check", \
     "--root-user-action=ignore", "watchdogd"]
# The state directory belongs to the unprivileged user the daemon runs as.
RUN ["python3", "-c", "import os; os.makedirs('/var/lib/watchdogd', 0o750); os.chown('/var/lib/watchdogd', 10001, 10001)"]

FROM ${BASE}
COPY --from=build /opt/watchdogd /opt/watchdogd
COPY --from=build --chown=10001:10001 /var/lib/watchdogd /var/lib/watchdogd
ENV PATH=/opt/watchdogd/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# As in the systemd unit (BENCHMARKS.md, idle): two malloc arenas for the daemon's few threads;
# no docstrings and no asserts, 1.7 MB less. The image writes no bytecode at run time, so the
# .opt-2.pyc files PYTHONOPTIMIZE=2 reads are compiled here, for the venv and the base's
# standard library: without them every start would compile every module it imports.
ENV MALLOC_ARENA_MAX=2 PYTHONOPTIMIZE=2
RUN ["python3", "-OO", "-c", "import compileall, sysconfig; [compileall.compile_dir(d, quiet=1) for d in ('/opt/watchdogd', sysconfig.get_path('stdlib'))]"]
# Not root. Reaching the Docker socket takes its group: `--group-add $(stat -c %g
# /var/run/docker.sock)` (compose: group_add). Socket access is root-equivalent anyway.
USER 10001:10001
VOLUME ["/var/lib/watchdogd"]
EXPOSE 9797
# Assumes `listen:` on port 9797 (0.0.0.0:9797 in a container, so a published port works).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD ["python3", "-c", "import urllib.request as u; u.urlopen('http://127.0.0.1:9797/healthz', timeout=4)"]
ENTRYPOINT ["watchdogd"]
CMD ["run", "--config", "/etc/watchdogd/watchdogd.yaml"]
