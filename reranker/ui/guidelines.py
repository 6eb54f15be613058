"""The team's annotation guidelines on the Annotate tab: versioned in the store, a Save that would
overwrite a colleague's newer version refused with theirs shown to merge."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

import gradio as gr

from ..store import GuidelinesChanged, StoreError
from .annotators import annotator_name, login_required, signed_in
from .text import Refusal, ShownError, escape, markdown, refuse

if TYPE_CHECKING:
    from .arena import Arena


MAX_GUIDELINES_CHARS = 64_000
DEFAULT_GUIDELINES = (
    "A page is **relevant** when a reader could answer the query from this page alone "
    "(text, table, chart or figure on the page). Pages that are merely on the same topic are "
    "**not relevant**. Use **Skip** when you cannot tell (unreadable, needs other pages)."
)


class GuidelinesConflict(Refusal):
    """A Save of guidelines edited from an older version than `latest`, saved by a colleague since."""

    def __init__(self, latest):
        super().__init__(f"Not saved: other guidelines were {latest.saved[0].lower()}{latest.saved[1:]}, after yours "
                         "were loaded. Theirs are shown under the box, yours stay in it: merge them and save again.",
                         print_exception=False)
        self.latest = latest


def read_guidelines(arena: Arena) -> tuple[str, str, int]:
    """The guidelines box's text, who saved it when (empty before anyone has), and its version
    (0: none saved), which a Save of an edit names (`Store.save_guidelines`'s `based_on`)."""
    saved = arena.store.guidelines()
    if saved is None:
        return DEFAULT_GUIDELINES, "", 0
    return saved.text, _saved_line(saved), saved.id


def _saved_line(saved) -> str:
    return escape(saved.saved) + "."


def conflict_line(latest) -> str:
    """Under the box after a refused Save: the colleague's newer version, to merge, line for line
    (a Markdown hard break ends each: their single line breaks ran together into one line)."""
    quoted = "  \n".join(f"> {escape(line)}" if line.strip() else ">" for line in latest.text.splitlines()) or "> (empty)"
    return (f"**Not saved**: newer guidelines came in after you loaded the page ({escape(latest.saved)}). "
            f"Theirs, to merge into yours (the next Save replaces them):\n\n{quoted}")


def write_guidelines(arena: Arena, text: str, name: str | None = None, profile: gr.OAuthProfile | None = None,
                      based_on: int | None = None) -> tuple[str, int]:
    """Save the guidelines (the earlier versions stay in the database), by the signed-in user where
    login is required (anyone else could rewrite the team's guidelines), else by the typed name,
    if any. `based_on`: the version the box was loaded with; where a colleague saved another since,
    nothing is saved and the message says so. Returns the who-and-when line and the version."""
    if len(text or "") > MAX_GUIDELINES_CHARS:
        raise refuse(f"The guidelines are {len(text):,} characters long; at most {MAX_GUIDELINES_CHARS:,} are kept.")
    if login_required():
        if profile is None:
            raise refuse("Sign in with Hugging Face (top of the Annotate tab) to change the guidelines: "
                         "on this Space each change carries its author's Hugging Face name.")
        author = profile.username
    elif not (name or "").strip():
        raise refuse("Enter your name (top of the Annotate tab) before saving the guidelines: the team "
                     "sees who changed them.")
    else:
        author = arena.store.known_annotator(annotator_name(name))
    try:
        saved = arena.store.save_guidelines(text or "", author, based_on)
    except GuidelinesChanged as error:
        raise GuidelinesConflict(error.latest) from None
    except StoreError as error:  # e.g. a full disk
        raise ShownError(error) from None
    gr.Info("Guidelines saved." if saved.id != based_on else "The guidelines already say this: nothing new to save.")
    return _saved_line(saved), saved.id


def layout() -> SimpleNamespace:
    """The guidelines under the judging buttons, folded away: the text box, who saved it when, Save."""
    with gr.Accordion("Guidelines (what counts as relevant)", open=False, elem_id="guidelines-accordion"):
        text = gr.Textbox(lines=6, label="Guidelines: what counts as relevant", show_label=False,
                          elem_id="guidelines")  # the label names it for screen readers
        saved_line = markdown(elem_id="guidelines-saved")
        version = gr.State(None)  # as loaded: see write_guidelines
        save_button = gr.Button("Save guidelines")
    return SimpleNamespace(text=text, saved_line=saved_line, version=version, save_button=save_button)


def wire(arena: Arena, box: SimpleNamespace, annotator: gr.Textbox, demo: gr.Blocks) -> None:
    """Save (by the annotator named in `annotator`, or the signed-in user); read on every page load."""
    def on_save_guidelines(text, name, version, profile: gr.OAuthProfile | None = None, request: gr.Request = None):
        profile = signed_in(profile, request)
        try:
            return write_guidelines(arena, text, name, profile, based_on=version)
        except GuidelinesConflict as conflict:
            # Their text under the box, the edit left in it; the next Save (of the merge) is
            # an edit of their version.
            gr.Warning(conflict.message)
            return conflict_line(conflict.latest), conflict.latest.id
        except Refusal as refusal:  # said in a toast; an error here would badge the line below the box
            gr.Warning(refusal.message)
            return gr.skip(), version  # the line stays (a colleague's version shown to merge, say)

    box.save_button.click(on_save_guidelines, [box.text, annotator, box.version], [box.saved_line, box.version], api_visibility="private")
    # Read on every page load (a value read once, at start-up, would show stale guidelines
    # that the next Save would write back over a colleague's; a colleague's save after the
    # load is caught by the version).
    demo.load(lambda: read_guidelines(arena), None, [box.text, box.saved_line, box.version],
              api_visibility="private")
