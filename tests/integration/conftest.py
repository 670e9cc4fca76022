"""What the emulator-backed tests of the HTTP routes share."""
import pytest
from chalice.test import Client

import app as app_module


@pytest.fixture
def client(aws):
    """Chalice's test client on a fresh service graph over moto."""
    app_module.services.cache_clear()
    with Client(app_module.app) as test_client:
        yield test_client
    app_module.services.cache_clear()
