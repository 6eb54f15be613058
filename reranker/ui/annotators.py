"""Who judges: the signed-in Hugging Face user where login is required, else the typed name; whose
labels Export and Evaluate use."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import gradio as gr

from .. import devices
from ..store import MAX_ANNOTATOR_CHARS
from ..text_rules import not_utf8, same_text
from .text import refuse

if TYPE_CHECKING:
    from .arena import Arena

logger = logging.getLogger(__name__)


def login_required() -> bool:
    """On a Space with Hugging Face login (`hf_oauth: true` sets OAUTH_CLIENT_ID) a judgment
    carries the signed-in user's name, read from the session on the server: a typed name could
    be anyone's. RERANKER_REQUIRE_LOGIN=0 allows typed names there too (API scripts cannot sign in).

    Only on a Space (SYSTEM=spaces, what Gradio checks): elsewhere Gradio's login is a mock that
    signs every visitor in as the machine's own Hugging Face user."""
    asked = devices.env_flag("RERANKER_REQUIRE_LOGIN", default=True)  # read everywhere: a typo is said locally too
    return bool(os.environ.get("OAUTH_CLIENT_ID")) and os.environ.get("SYSTEM") == "spaces" and asked


def given_name(value, parameter: str = "annotator") -> str:
    """A name as given (stripped; "" for none), or a refusal naming the parameter: an API client's
    5 or ["alice"] met `.strip()` and came back as Gradio's unexplained error."""
    if value is not None and not isinstance(value, str):
        raise refuse(f"{parameter} must be a name (text), got {value!r}")
    if value and (problem := not_utf8(value)):  # a lone surrogate, which JSON can carry: the store's codec error
        raise refuse(f"{parameter} is not valid text: {problem}")
    return (value or "").strip()


def annotator_name(name: str | None, profile: gr.OAuthProfile | None = None) -> str:
    """Who is judging: the signed-in user where login is required (see `login_required`), else
    the typed name."""
    name = given_name(name)
    if login_required():
        if profile is None:
            raise refuse("Sign in with Hugging Face (top of the Annotate tab) to judge: on this Space "
                           "every judgment carries its annotator's Hugging Face name.")
        if name and _ascii_folded(name) != _ascii_folded(profile.username):  # "ALICE" is alice, as everywhere
            raise refuse(f"You are signed in as {profile.username}: judgments here carry that name, not {name!r}.")
        return profile.username
    if not name:
        raise refuse("Enter your name (top of the Annotate tab, or annotator in the API) before judging, so judgments can be told apart.")
    if len(same_text(name)) > MAX_ANNOTATOR_CHARS:  # counted as the store counts it
        raise refuse(f"That name is too long ({MAX_ANNOTATOR_CHARS} characters at most).")
    return name


def signed_in(profile: gr.OAuthProfile | None, request: gr.Request | None) -> gr.OAuthProfile | None:
    """The signed-in user, for a request from this app's own pages (or from a script, which sends
    no Origin). A request that a page on another site makes the visitor's browser send carries
    their login cookie too (Gradio's is SameSite=None, and its CORS answers any origin): it is
    treated as signed out, so that no other site can judge, undo or save under their name. The
    app's hosts are the request's Host and the Space's own (SPACE_HOST), never X-Forwarded-Host:
    that page's script may set it to its own host."""
    origin = request.headers.get("origin") if profile is not None and request is not None else None
    if not origin:
        return profile
    own = {request.headers.get("host"), os.environ.get("SPACE_HOST")}
    if urlsplit(origin).netloc in own - {None}:
        return profile
    logger.warning("a request from %s carried %s's login: treated as signed out (not this app's page)",
                   origin, profile.username)
    return None


def _ascii_folded(name: str) -> str:
    """As SQLite's NOCASE compares names (`Store.known_annotator`): ASCII letters only."""
    return "".join(c.lower() if c.isascii() else c for c in name)


def typed_annotator(arena: Arena, name: str | None) -> str | None:
    """The name in the Annotate tab's box, as judgments carry it (`Store.known_annotator`)."""
    name = given_name(name)
    return arena.store.known_annotator(name) if name else None


# The Evaluate tab's Labels choice of no annotator: its value is empty (as the API's), so a person
# who judges under the name "Majority vote" can still be chosen alone.
MAJORITY_VOTE = ("Majority vote", "")


def label_choices(arena: Arena):
    """Whose labels Export and Evaluate use: the majority vote, or one annotator's."""
    return gr.update(choices=[MAJORITY_VOTE, *arena.store.annotators()])
