"""Browser tests: the fixtures (`browser`, `page`, `app_server`) live in tests/conftest.py so that one
Playwright session serves every folder; the helpers are re-exported here for the tests' imports."""
from tests.support.browser import ALL_TEXT_SELECTED, ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, screenshot, wait_for_app  # noqa: F401
