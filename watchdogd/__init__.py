"""watchdogd: metric-driven automatic rollback for Docker hosts.

The package, one role per package; the top level holds only entry points and foundations:

    __main__, cli   entry points
    errors          the one exception tree
    model           values crossing layers, including the one public form of a release
    redact          the one redaction of secrets
    core/           the pure decisions: windows, gates, guards, incident, policy, selectors
    config/         the YAML users write, validated into typed settings
    engine/         Docker and Swarm API access
    traffic/        HAProxy: runtime API, log receiver, weights
    sources/        the probes and watchers that produce samples
    targets/        what a release is and how it is put back, per kind of target
    store/          the SQLite state store
    playbook/       an incident's steps and the journaled runner
    watch/          per target: recorders, the controller, state mirrors
    deploy/         deploy orchestration (blue-green, canary)
    metrics/        /metrics
    api/            the HTTP server, its OpenAPI document, Alertmanager payloads, the CLI's client
    daemon/         life cycle, wiring, supervisor, sd_notify, logging
    demo/           ``watchdogd demo``

Import order: a module imports only from its own package or from one listed before it
(``tests/test_import_order.py`` reads this line and checks it, with no import cycles):

    __init__, errors, model, redact < core < config < engine < traffic < sources < targets
    < store < playbook < watch < deploy < metrics < api < daemon < demo < cli < __main__
"""

__version__ = "0.1.0"
