"""The chaos soak: a real Docker engine, a real ``watchdogd run``, random seeded events, and
invariants checked at the end (issue #16). ``make soak`` runs it for 30 minutes.

    python benchmarks/soak.py --minutes 3 --seed 7 [--engine-restarts /var/run/docker.pid]

Targets (``soak_targets``, ``soak_bluegreen``): a container deployed by ``docker rm -f`` +
``run``, a Compose service deployed by the real ``docker-compose``, a release directory, and
a blue-green container behind a real HAProxy deployed by ``watchdogd deploy`` (skipped with
``--no-blue-green``); all under steady client load. Each target is a lane (``soak_chaos``)
that, whenever it is settled, does one of: deploy a good release, deploy a bad one (500s, 3 s
latency, failed login, crash loop, unhealthy; the release directory only 500s; blue-green
also a release that passes its pre-checks and is broken by the soak when its bake starts),
freeze it for a few seconds, roll it back by hand, unquarantine an image, restart the good
release by hand (``docker restart``, ``docker-compose restart``: which must not roll it
back), stop it by hand for 3 to 15 s and start it again (``docker stop``, ``docker-compose
stop``: watchdogd must leave it stopped), or send an Alertmanager ``resolved`` before its
``firing`` (which must not roll anything back). A bad
deploy is sometimes followed by duplicate and out-of-order deliveries of its alert.
Meanwhile, at random (each kind once first, so a short run has them all): SIGKILL of the
daemon and a restart (none in the last 40 % of the run, so that one process lives long enough
to judge its memory), SIGHUP with a valid or an invalid config, HAProxy stopped and started
(its runtime weights and servers forgotten), and (only with ``--engine-restarts PIDFILE``: an
engine this run may stop) the engine stopped for 2 to 10 s and started again, at least once,
mid-run.

At the end ``soak_invariants.check`` and ``soak_bluegreen_invariants.check_bluegreen`` print
one table. A violation prints the seed and the event history to replay it; the exit status is
1. What was done and observed is kept in the work directory (``soak.pickle``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import random
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT)]

import docker  # noqa: E402
from common import free_port  # noqa: E402
from mttr_app import build_images, remove_images  # noqa: E402
from soak_bluegreen import (  # noqa: E402
    BlueGreenTarget,
    read_deploys,
)
from soak_bluegreen_invariants import BgObserved, check_bluegreen  # noqa: E402
from soak_chaos import Lane, Soak  # noqa: E402
from soak_invariants import Observed  # noqa: E402
from soak_report import report  # noqa: E402
from soak_targets import (  # noqa: E402
    ComposeTarget,
    ContainerTarget,
    ReleaseDirTarget,
    SoakTarget,
)
from soak_world import (  # noqa: E402
    Daemon,
    Engine,
    Load,
    engine_objects,
    leaks,
    read_store,
    remove_new_volumes,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--engine-restarts",
        type=Path,
        metavar="PIDFILE",
        help="stop and start the dockerd of this pid file (only an engine this run may stop)",
    )
    parser.add_argument("--no-blue-green", action="store_true", help="no HAProxy target")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    print(f"soak: seed {seed}, {args.minutes} min, engine restarts: {bool(args.engine_restarts)}")
    workdir = Path(tempfile.mkdtemp(prefix="watchdogd-soak-"))
    run_id = f"{os.getpid()}"
    client = docker.from_env(timeout=60)
    refs = build_images(client)
    before = engine_objects(client)
    ctr = ContainerTarget(client, refs, f"soak-app-{run_id}", free_port(), run_id)
    compose = ComposeTarget(client, refs, f"soak{run_id}", free_port(), workdir, run_id)
    rdir = ReleaseDirTarget(workdir / "app")
    targets: list[SoakTarget] = [ctr, compose, rdir]
    for target in targets:
        target.deploy("good-0", None, "up")
    bg = None
    if not args.no_blue_green:
        bg = BlueGreenTarget(client, refs, f"soak-bg-{run_id}", free_port(), workdir, run_id)
        bg.start(free_port())
        targets.append(bg)
    daemon = Daemon(workdir, free_port(), targets)
    if bg is not None:
        bg.daemon_url = f"http://127.0.0.1:{daemon.port}"
    load = Load([f"{t.url}/cgi-bin/api" if t is not rdir else f"{t.url}/" for t in targets])
    engine = Engine(args.engine_restarts, workdir / "dockerd.log") if args.engine_restarts else None
    # Every lane starts by waiting for its first release to bake.
    lanes = [Lane(t, phase="settling", since=time.time(), kind="deploy") for t in targets]
    soak = Soak(random.Random(seed), daemon, lanes, engine, bg=bg)
    bg_seen = BgObserved()
    try:
        daemon.start()
        load.start()
        soak.run(args.minutes * 60)
        soak.settle_all()
        time.sleep(3)
        load.stop()
        client = docker.from_env(timeout=60)
        observed = Observed(samples=soak.samples)
        kinds = {"ctr": "container", "compose": "compose", "dir": "release_dir", "bg": "container"}
        current_ids = {
            t.name: ((daemon.status(t.name) or {}).get("current_release") or {}).get("id")
            for t in targets
        }
        read_store(daemon.state, kinds, current_ids, observed)
        observed.command_log = daemon.commands.read_text().split()
        observed.running = {t.name: t.running() or "?" for t in targets}
        observed.leaks = leaks(client, before, {f"{compose.project}_default"})
        if bg is not None:
            uri = f"file:{daemon.state / 'watchdogd.db'}?mode=ro"
            with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
                bg_seen.deploys = read_deploys(db, bg.name, bg.repo)
            bg_seen.pairs, bg_seen.served, bg_seen.broken = soak.pairs, load.served, soak.broken
            bg_seen.left = bg.app_containers(running_only=False)
            observed.switched_back = {
                d.label for d in bg_seen.deploys if d.stage == "aborted" and d.label in soak.broken
            }
    finally:
        load.stop()
        daemon.stop()
        compose.down()
        with contextlib.suppress(Exception):
            client.api.remove_container(ctr.container, force=True, v=True)
        rdir.close()
        if bg is not None:
            bg.close()
        remove_images(client, refs)
        remove_new_volumes(client, before)
    with (workdir / "soak.pickle").open("wb") as kept:  # to check the invariants again
        pickle.dump((seed, soak.history, observed, soak.attempts, bg_seen), kept)
    extra = check_bluegreen(soak.attempts, soak.history.outages, bg_seen) if bg else []
    return report(
        seed,
        soak.history,
        observed,
        counts=soak.counts,
        events=soak.events,
        load=(load.sent, load.failed),
        extra=extra,
        workdir=workdir,
    )


if __name__ == "__main__":
    sys.exit(main())
