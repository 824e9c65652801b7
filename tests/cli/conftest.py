"""The CLI tests drive the same release-directory daemon as the surface tests."""

from tests.surfaces.conftest import daemon_factory, release_app

__all__ = ["daemon_factory", "release_app"]
