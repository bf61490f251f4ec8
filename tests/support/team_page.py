"""The app under AppTest with sign-in configured: a signed-in user's session on a page."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from tests.support.apptest import ran

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "app.py")
TEAM_PAGE = "pages/6_Team.py"
# what ui.common.sign_in_enabled() looks for; the provider is never contacted in these tests
AUTH = {"auth": {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "s" * 32,
                 "client_id": "shoal-test", "client_secret": "secret",
                 "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}}


def as_user(page: str, email: str, name: str | None = None) -> AppTest:
    """A signed-in user's session on `page`, inside the app's frame (app.py: the sign-in gate and
    the navigation the page links into)."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.secrets = AUTH
    at.user = {"is_logged_in": True, "email": email, "name": name or email.split("@")[0].title()}
    ran(at)
    return at.switch_page(page)
