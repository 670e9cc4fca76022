"""The unit tier runs no subprocess (no ffmpeg) and no AWS emulator: everything here goes
through the in-memory backend and pure functions, so it runs in seconds."""
import subprocess

import pytest


class OutsideTheUnitTier(BaseException):
    """Not an Exception: no handler of the code under test may swallow it."""


@pytest.fixture(autouse=True)
def no_subprocess(monkeypatch):
    def refuse(*args, **kwargs):
        raise OutsideTheUnitTier(f"a unit test started a process: {args[0] if args else kwargs}")
    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.fixture(autouse=True)
def no_aws(monkeypatch):
    import botocore.client

    def refuse(*args, **kwargs):
        raise OutsideTheUnitTier("a unit test called AWS: use the in-memory backend")
    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", refuse)


@pytest.fixture
def services(monkeypatch):
    """The app's routes over the in-memory backend."""
    import app as app_module
    from chalicelib import wiring
    from chalicelib.settings import get_settings
    get_settings.cache_clear()
    built = wiring.build(get_settings(), wiring.memory_backend())
    monkeypatch.setattr(app_module, "services", lambda: built)
    return built


@pytest.fixture
def client(services):
    """Chalice's test client of the app, over `services`."""
    import app as app_module
    from chalice.test import Client
    with Client(app_module.app) as test_client:
        yield test_client
