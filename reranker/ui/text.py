"""Text the app shows: user text escaped for Markdown and toasts, refusals, names and labels
shortened or told apart. Everything a user typed or named is escaped before it is rendered,
and Markdown never renders LaTeX."""

from __future__ import annotations

import collections
import contextlib
import functools
import html
import inspect
import re
import sqlite3

import gradio as gr

from .. import documents
from ..store import QueryPage, StoreError, read_failure


def escape(text: object) -> str:
    """Text shown inside Markdown: no HTML, no Markdown syntax from users. Markdown's escapes
    first, then HTML's, which makes only &amp; &lt; &gt; (so "<" and ">" need no Markdown escape;
    an escaped entity, as `&#x27;` for a quote once was, would show as text). "=" (a line of them
    under text made it a heading) and the "." of a number starting a line (a numbered list) too."""
    marked = re.sub(r"([\\`*_{}\[\]()#+!|~=-])", r"\\\1", str(text))
    return html.escape(re.sub(r"(?m)^(\s*\d+)\.", r"\1\\.", marked), quote=False)


def markdown(value: str = "", **options) -> gr.Markdown:
    """A Markdown component that never renders LaTeX: user text such as `$$x$$` stays text."""
    return gr.Markdown(value, latex_delimiters=[], **options)


def plain(message: str) -> str:
    """A message for a toast, which Gradio shows as (sanitised) HTML: markup in a name or a query
    someone typed (an <img> fetching another site, a styled block over the page) shows as text."""
    return html.escape(str(message), quote=False)


class ShownError(gr.Error):
    """An error for whoever asked: its message escaped for the page's toast (see `plain`), and
    kept as `text`, as it is, for API clients (see `api_errors`)."""

    def __init__(self, text: object, **options):
        super().__init__(plain(text), **options)
        self.text = str(text)


class Refusal(ShownError):
    """What a person (or API client) gave cannot be used (not a failure of the app)."""


# What Gradio's own page sends as `x-gradio-user` with each event; its Python and JavaScript
# clients send "api", and a plain HTTP client nothing.
FROM_THE_PAGE = "app"


@contextlib.contextmanager
def api_errors(request: gr.Request | None):
    """Around an endpoint API clients call (/rank, /judge, …): a `ShownError` reaches a client
    as its text. Only the app's page renders a message as HTML; escaped, a client read
    "(got '&lt;rel&gt;')" for "(got '<rel>')"."""
    try:
        yield
    except ShownError as error:
        headers = getattr(request, "headers", None) or {}
        if headers.get("x-gradio-user") == FROM_THE_PAGE:
            raise
        raise gr.Error(error.text, duration=error.duration, visible=error.visible, title=error.title,
                       print_exception=error.print_exception) from None


def store_failures_said(function, database_path):
    """An event's function whose database failures (a damaged file, one replaced under the app,
    a full disk) reach whoever asked as their message: Gradio shows any other exception as a
    bare "Error". The events that write say theirs already; this covers every read too.
    Generators and coroutines are left as they are (the app has none)."""
    if not inspect.isfunction(function) and not inspect.ismethod(function):
        return function
    if inspect.isgeneratorfunction(function) or inspect.iscoroutinefunction(function) or inspect.isasyncgenfunction(function):
        return function

    @functools.wraps(function)  # Gradio reads the signature (gr.Request, gr.Progress) through it
    def said(*args, **kwargs):
        request = next((value for value in (*args, *kwargs.values()) if isinstance(value, gr.Request)), None)
        with contextlib.nullcontext() if request is None else api_errors(request):
            try:
                return function(*args, **kwargs)
            except StoreError as error:
                raise ShownError(error) from None
            except sqlite3.DatabaseError as error:  # a read: "database disk image is malformed", say
                raise ShownError(read_failure(database_path, error)) from error

    return said


def message_text(error: gr.Error) -> str:
    """An error's message (made for a toast: see `plain`) as text to show in Markdown: escaped
    for Markdown once ("AT&T" showed as "AT&amp;T")."""
    return escape(html.unescape(error.message))


def refuse(message: str) -> Refusal:
    """What a person (or API client) gave cannot be used: the message, shown to them, and no
    traceback in the server's log, where nothing went wrong."""
    return Refusal(message, print_exception=False)


def shortened(text: str, limit: int) -> str:
    """`text`, or its first words within `limit` characters and an ellipsis (not cut mid-word)."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut) + "…"


def distinct_names(names: dict[int, str]) -> dict[int, str]:
    """Query id → its name as shown, with "(query #id)" after a name another query shares: two
    instructions alike in their first 40 characters, or long texts alike as far as they are shown."""
    counts = collections.Counter(names.values())
    return {query_id: name if counts[name] == 1 else f"{name} (query #{query_id})" for query_id, name in names.items()}


def page_label(page: dict) -> str:
    return documents.page_label(page["source"], page["page_number"], page.get("kind"), page.get("page_count"))


def stored_page_label(page: QueryPage) -> str:
    return documents.page_label(page.source, page.page_number, page.kind, page.page_count)
