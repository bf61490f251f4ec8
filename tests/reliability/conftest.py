"""Browser fixtures for the reliability tests (shared with tests/e2e)."""
from tests.e2e.conftest import app_server, browser, page  # noqa: F401  (pytest fixtures)
