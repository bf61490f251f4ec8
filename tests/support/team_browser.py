"""Signing in, in a real browser, through a local OIDC provider (the `oidc` fixture in tests/conftest.py)."""
from __future__ import annotations

import secrets
from pathlib import Path

from tests.support.browser import wait_for_app

OWNER = "owner@example.com"          # named the team's owner in every HOME that sign_in_home writes


def sign_in_home(tmp_path, port: int, oidc: str, extra: str = "") -> Path:
    """A HOME whose .streamlit/secrets.toml signs in through the loopback OIDC provider, with
    OWNER named as the team's owner (`extra`: more TOML, say a [shoal.roles] table)."""
    home = tmp_path / "home"
    (home / ".streamlit").mkdir(parents=True)
    (home / ".streamlit" / "secrets.toml").write_text(f"""
[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "{secrets.token_hex(32)}"
client_id = "shoal-test"
client_secret = "shoal-test-secret"
server_metadata_url = "{oidc}/.well-known/openid-configuration"

[shoal.team]
owner = "{OWNER}"
{extra}""")
    return home


def sign_in(page, url: str, email: str) -> None:
    page.goto(url + "/")
    wait_for_app(page)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/oauth2/authorize**")                   # the provider's own form
    page.fill("input[name=sub]", email)
    page.click("button:has-text('Authorize')")
    page.wait_for_url(url + "/**")
    page.wait_for_selector(f"[data-testid='stSidebar'] :text('{email}')")
    wait_for_app(page)
