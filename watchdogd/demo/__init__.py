"""``watchdogd demo``: a sample app, a bad release, and watchdogd rolling it back.

The pieces, in the order a demo run uses them:

* ``release`` lays out a release directory (``releases/v1``, ``releases/v2``, ``current``)
  whose ``fault`` file picks how a release misbehaves;
* ``app`` is the sample app (aiohttp), and ``app_ctl`` starts, stops and restarts it
  (the release directory target's restart command);
* ``scenario`` renders the demo's watchdogd config from the templates in ``config/``;
* ``traffic`` plays the users whose requests the app's ``/metrics`` counts;
* ``stage`` (release directory) and ``docker_stage`` (containers) deploy v1, then v2;
* ``runner`` drives one run and ``view`` shows it: a live view on a terminal, plain lines
  elsewhere, and a summary at the end.
"""
