"""The app as a Space with Hugging Face login (`hf_oauth: true`): judgments carry the signed-in
user's name, taken from the session on the server, never a typed one.

The real app runs with the environment a Space with OAuth gets. Signing in at huggingface.co is
the one step that cannot run here, so the tests hand the app the session cookie its login
callback would have set (signed with the key Gradio derives from the OAuth secret), as the API
client's cookie and in a real browser.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest

from .app_server import SAMPLES, start_app

OAUTH_SECRET = "test-oauth-secret"
SPACE_ENV = {
    "SYSTEM": "spaces",
    "SPACE_ID": "arena-tests/rerank-arena",
    "OAUTH_CLIENT_ID": "test-client-id",
    "OAUTH_CLIENT_SECRET": OAUTH_SECRET,
    "OAUTH_SCOPES": "openid profile",
    "OPENID_PROVIDER_URL": "http://127.0.0.1:9",  # only asked at sign-in, which no test does
}


@pytest.fixture(scope="module")
def space(tiny_checkpoints, tmp_path_factory):
    server = start_app({**tiny_checkpoints.environment(), **SPACE_ENV}, tmp_path_factory.mktemp("space"))
    try:
        yield server
    finally:
        server.stop()


def session_cookie(username: str) -> str:
    """The `session` cookie Gradio's /login/callback sets for `username` (Starlette's
    SessionMiddleware format: base64 JSON, itsdangerous-signed)."""
    import itsdangerous

    session = {"oauth_info": {
        "access_token": "hf_oauth_test", "token_type": "bearer", "scope": "openid profile",
        "expires_at": int(time.time()) + 3600,
        "userinfo": {"preferred_username": username, "name": username.title(),
                     "profile": f"https://huggingface.co/{username}", "picture": ""},
    }}
    secret = hashlib.sha256(f"{OAUTH_SECRET}-v4".encode()).hexdigest()
    return itsdangerous.TimestampSigner(secret).sign(base64.b64encode(json.dumps(session).encode())).decode()


def client_for(space, tmp_path, username: str | None = None):
    from gradio_client import Client

    headers = {"Cookie": f"session={session_cookie(username)}"} if username else None
    return Client(space.url, verbose=False, headers=headers, download_files=str(tmp_path))


@pytest.fixture(scope="module")
def ranked(space, tmp_path_factory) -> dict:
    from gradio_client import handle_file

    anonymous = client_for(space, tmp_path_factory.mktemp("anonymous"))
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (9, 4, 1)]
    return anonymous.predict(files=files, query="extinction in the SUC2 plot", api_name="/rank")  # anyone may rank


def test_the_api_judges_as_the_signed_in_user_and_refuses_anyone_else(space, ranked, tmp_path):
    from gradio_client.exceptions import AppError

    from reranker.store import Store

    query_id = ranked["query_id"]
    first, second = (entry["content_hash"] for entry in ranked["pages"][:2])
    anonymous, alice = client_for(space, tmp_path / "a"), client_for(space, tmp_path / "b", "alice")

    with pytest.raises(AppError, match="Sign in with Hugging Face"):
        anonymous.predict(query_id=query_id, page_hash=first, annotator="alice", label="relevant", api_name="/judge")
    with pytest.raises(AppError, match="Sign in with Hugging Face"):
        anonymous.predict(query_id=query_id, annotator="alice", api_name="/undo")
    with pytest.raises(AppError, match="signed in as alice"):
        alice.predict(query_id=query_id, page_hash=first, annotator="bob", label="relevant", api_name="/judge")

    judged = alice.predict(query_id=query_id, page_hash=first, annotator="", label="relevant", api_name="/judge")
    assert (judged["annotator"], judged["judged"]) == ("alice", 1)
    alice.predict(query_id=query_id, page_hash=second, annotator="alice", label="not_relevant", api_name="/judge")
    undone = alice.predict(query_id=query_id, annotator="", api_name="/undo")
    assert undone["undone"]["page_hash"] == second and undone["judged"] == 1

    with Store(space.db_path) as store:
        assert store.annotators() == ["alice"]
        assert store.current_labels(query_id, "alice") == {first: "relevant"}  # the second undone


def test_a_request_another_site_makes_the_browser_send_is_not_signed_in(space, ranked, tmp_path):
    """The login cookie is SameSite=None and Gradio's CORS answers any origin: a page elsewhere
    could make a signed-in visitor's browser judge under their name, and read the answer."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from reranker.store import Store

    query_id, page_hash = ranked["query_id"], ranked["pages"][2]["content_hash"]
    cookie = f"session={session_cookie('dave')}"

    def client(origin, **more_headers):
        return Client(space.url, verbose=False, headers={"Cookie": cookie, "Origin": origin, **more_headers},
                      download_files=str(tmp_path))

    with pytest.raises(AppError, match="Sign in with Hugging Face"):
        client("https://evil.example").predict(query_id=query_id, page_hash=page_hash, annotator="", label="relevant",
                                               api_name="/judge")
    # The other site's page may set X-Forwarded-Host (CORS lets it send any header): it names no
    # host of the app's.
    with pytest.raises(AppError, match="Sign in with Hugging Face"):
        client("https://evil.example", **{"X-Forwarded-Host": "evil.example"}).predict(
            query_id=query_id, page_hash=page_hash, annotator="", label="relevant", api_name="/judge")
    with Store(space.db_path) as store:
        assert "dave" not in store.annotators()
    own = space.url.rstrip("/")  # the app's own page: its Origin is the app's host
    judged = client(own).predict(query_id=query_id, page_hash=page_hash, annotator="", label="relevant", api_name="/judge")
    assert judged["annotator"] == "dave"
    with pytest.raises(AppError, match="Sign in with Hugging Face"):
        client("https://evil.example").predict(query_id=query_id, annotator="", api_name="/undo")
    assert space.log_path.read_text().count("carried dave's login: treated as signed out") == 3


def test_in_the_browser_the_name_is_the_login_and_cannot_be_typed(space, ranked):
    playwright_api = pytest.importorskip("playwright.sync_api")
    chromium = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
    if not Path(chromium).exists():
        pytest.skip(f"no Chromium at {chromium}")
    from playwright.sync_api import expect

    from reranker.store import Store

    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            context.set_default_timeout(60_000)
            context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]|data:|blob:)"), lambda route: route.abort())
            context.add_cookies([{"name": "session", "value": session_cookie("carol"), "url": space.url}])
            page = context.new_page()
            page.goto(space.url)
            page.get_by_role("tab", name="Annotate").click()
            name_box = page.locator("#annotator textarea, #annotator input").first
            expect(name_box).to_have_value("carol", timeout=20_000)
            expect(name_box).to_be_disabled()
            page.locator("#query-pick input").first.click()
            page.get_by_role("option").first.click()
            expect(page.locator("#annotate-progress")).to_contain_text("0/3 judged by carol", timeout=20_000)
            # A click while the page view is still on its way is dropped (static/shortcuts.js):
            # the list sends its choice twice, and the second view could still be running.
            page.wait_for_function("() => { const t = document.querySelector("
                                   "'#annotate-progress [data-testid=\"status-tracker\"]');"
                                   " return !t || t.classList.contains('hide'); }")
            page.locator("#judge-relevant").click()
            expect(page.locator("#annotate-progress")).to_contain_text("1/3 judged by carol", timeout=20_000)
        finally:
            browser.close()
    with Store(space.db_path) as store:
        assert "carol" in store.annotators()
        assert list(store.current_labels(ranked["query_id"], "carol").values()) == ["relevant"]
