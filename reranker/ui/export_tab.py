"""The Export tab: the judgments as hard-negative training data, previewed, then written (the /export
endpoint)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING

import gradio as gr
from gradio.processing_utils import hash_file

from ..export import DEFAULTS, FORMAT_ONLY_OPTIONS, FORMATS, RULES
from .annotators import MAJORITY_VOTE, given_name, label_choices
from .text import ShownError, api_errors, markdown, message_text, refuse

if TYPE_CHECKING:
    from ..export import Selection
    from .arena import Arena

logger = logging.getLogger(__name__)

EXPORT_KEEP_SECONDS = 3600  # export files older than this are removed when the next is made
EXPORTS_KEPT = 4  # and only this many newest, whatever their age


def export_options(fmt, rule, k, max_negatives, annotator, since, until, agreement, mined, negatives_per_row=None):
    from ..export import ExportOptions

    # Each message names the box and, in brackets, the /export parameter (for API clients).
    values = dict(format=fmt, rule=rule, k=_whole_number("k", k),
                  max_negatives=_whole_number("Max negatives per query (max_negatives)", max_negatives, least=0),
                  annotator=given_name(annotator) or None, since=_moment("Judged since (since)", since),
                  until=_moment("Judged until (until)", until),
                  require_agreement=_yes_or_no("Only pages annotators agree on (agreement)", agreement),
                  include_mined_negatives=_yes_or_no("Add model-mined negatives (mined)", mined),
                  # 0 or an empty box: the fewest negatives any query has (every usable query kept).
                  negatives_per_row=None if negatives_per_row in (None, "") else
                  _whole_number("Negatives per row (negatives_per_row)", negatives_per_row, least=0) or None)
    if fmt != FORMAT_ONLY_OPTIONS["negatives_per_row"]:
        # The box keeps its value across formats: the other formats' rows have no such setting,
        # and their file recorded one that was never applied (the CLI refuses it for them).
        values["negatives_per_row"] = None
    try:
        return ExportOptions(**values)
    except ValueError as error:  # e.g. since after until, an unknown format from an API client
        raise refuse(str(error)) from None


def _moment(name: str, text):
    """A date box's value (None when empty), or a message naming the box."""
    from ..store import parse_moment

    if not (text or "").strip():
        return None
    try:
        return parse_moment(text)
    except ValueError as error:
        raise refuse(f"{name}: {error}") from None


def _yes_or_no(name: str, value) -> bool:
    """A check box's value, or a message naming it: an API client's "false" was a true string."""
    if value is None or isinstance(value, bool):
        return bool(value)
    raise refuse(f"{name} must be true or false (got {value!r}).")


def _whole_number(name: str, value, least: int = 1) -> int:
    """A number box's value as an int ≥ `least`, or a message naming the box (an emptied box is None)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number < least or (isinstance(value, float) and value != number):
        raise refuse(f"{name} must be a whole number of at least {least} (got {value!r}).")
    return number


def previewed(arena: Arena, *options) -> tuple[str, Selection]:
    """The preview's text, and the selection it counted (which the Export click then writes)."""
    from ..export import summarize

    options = export_options(*options)  # its own messages, as they are
    try:
        selection = arena.selections.select(arena.store, options)
    except ValueError as error:
        raise refuse(str(error)) from None
    return "```\n" + summarize(selection).describe() + "\n```", selection


def preview_view(arena: Arena, *options) -> str:
    """The Preview box: the counts, or in their place what is wrong with the options (a message
    in a toast would leave the last preview's counts on screen, as if they still held)."""
    return preview_check(arena, *options)[0]


def preview_check(arena: Arena, *options) -> tuple[str, Selection | None]:
    """`preview_view`'s text, and what the options select (None: they cannot be exported)."""
    try:
        return previewed(arena, *options)
    except gr.Error as error:
        return f"⚠️ {message_text(error)}", None


def export_file(arena: Arena, fmt: str = DEFAULTS.format, rule: str = DEFAULTS.rule, k: int = DEFAULTS.k,
                max_negatives: int = DEFAULTS.max_negatives,
                annotator: str = "", since: str = "", until: str = "", agreement: bool = False,
                mined: bool = False, negatives_per_row: int | None = None, selection: Selection | None = None,
                gradio_copies: set[str] | None = None) -> str:
    """Write the judgments as hard-negative training data; returns the file (zip or parquet).
    `selection`: the preview's of the same options (see `reranker.export.export`);
    `gradio_copies`: see `_remove_old_exports`."""
    from ..export import NothingToExportError, default_filename, export

    options = export_options(fmt, rule, k, max_negatives, annotator, since, until, agreement, mined, negatives_per_row)
    if selection is not None and selection.options != options:  # an option changed while it was previewed
        selection = None  # what is on screen now is exported, selected again
    _remove_old_exports(arena.exports_dir, gradio_copies)
    folder = None
    try:
        arena.exports_dir.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(dir=arena.exports_dir, prefix="export-"))
        selection = selection or arena.selections.select(arena.store, options)  # an API call: no preview
        return str(export(arena.store, options, folder / default_filename(options), selection=selection))
    except (NothingToExportError, ValueError, OSError) as error:
        if folder is not None:  # no empty folder left behind
            shutil.rmtree(folder, ignore_errors=True)
        if not isinstance(error, OSError):
            raise refuse(str(error)) from None
        # The file, in the app's folder for exports, could not be written (a full disk, say).
        full = getattr(error, "errno", None) == errno.ENOSPC or os.strerror(errno.ENOSPC) in str(error)
        reason = "the disk holding it is full; free some space and try again" if full else str(error)
        logger.warning("export failed: %s", error)
        raise ShownError(f"The export file could not be written in the app's folder for them, {arena.exports_dir} "
                         f"(in RERANKER_CACHE): {reason}. Nothing stored was changed.", print_exception=False) from None


def _remove_old_exports(exports_dir: Path, gradio_copies: set[str] | None = None) -> None:
    """Before an export is made: each is a new file of every judged page, so those older than
    EXPORT_KEEP_SECONDS go, and all but the EXPORTS_KEPT − 1 newest (anyone may export: a loop of
    exports filled the disk within the hour, and then judging failed).

    `gradio_copies`: the Download box's copies of exports in Gradio's temporary folder (its
    `temp_files`); those of the exports removed go too. Gradio serves an export from its copy and
    keeps it until its delete_cache pass, an hour on: 20 exports in 40 s held 169 MB there while
    the app kept 34 MB."""
    cutoff = time.time() - EXPORT_KEEP_SECONDS
    folders = []
    for folder in Path(exports_dir).glob("export-*"):
        with contextlib.suppress(OSError):  # removed meanwhile by another export
            if folder.is_dir():
                folders.append((folder.stat().st_mtime, folder))
    kept, removed = [], {}  # removed: (hash, name) -> size
    for index, (made, folder) in enumerate(sorted(folders, key=lambda item: item[0], reverse=True)):
        goes = made < cutoff or index >= EXPORTS_KEPT - 1
        for path in folder.glob("*") if gradio_copies else ():
            with contextlib.suppress(OSError):  # removed meanwhile by another export
                if goes:
                    removed[hash_file(path), path.name] = path.stat().st_size
                else:
                    kept.append(path)
        if goes:
            shutil.rmtree(folder, ignore_errors=True)
    # Gradio's copy of a file it serves is <its temporary folder>/<a hash of the bytes>/<the name>
    # (processing_utils.save_file_to_cache): a kept export of the same bytes and name (two made in
    # the same second have the same name) shares it.
    removed_sizes = {(name, size) for (_, name), size in removed.items()}
    for path in kept:
        with contextlib.suppress(OSError):
            if (path.name, path.stat().st_size) in removed_sizes:
                removed.pop((hash_file(path), path.name), None)
    for copy in list(gradio_copies or ()):  # a list first: Gradio adds to the set from other threads
        if (Path(copy).parent.name, Path(copy).name) in removed:
            with contextlib.suppress(OSError):
                os.remove(copy)
                gradio_copies.discard(copy)
                os.rmdir(Path(copy).parent)  # its <sha256> folder, if now empty


def layout() -> SimpleNamespace:
    """The Export tab's components: format, rule and filters; preview; the file."""
    with gr.Tab("Export", id="export") as tab:
        markdown(
            "Positives are pages judged relevant; **hard negatives** are pages judged not relevant "
            "that a model ranked high. Unjudged pages are never negatives unless you ask for "
            "model-mined ones (unjudged pages a model ranked high in queries someone judged, marked as such). "
            "Images travel inside the file."
        )
        with gr.Row():
            # The min_widths stack these at phone width, where "above_lowest_positive" ran out of its box.
            fmt = gr.Radio(list(FORMATS), value=DEFAULTS.format, label="Format", min_width=300)
            rule = gr.Radio(list(RULES), value=DEFAULTS.rule, label="Hard-negative rule", min_width=300)
        with gr.Row():
            # No minimum: Gradio's own refusal does not name the box ("Value -1 is less than
            # minimum value 0"); export_options does.
            # No rounding in the box (precision=0 made 2.5 a silent 2): `_whole_number` refuses it.
            k = gr.Number(DEFAULTS.k, label="k (top-k rule)", step=1)
            max_negatives = gr.Number(DEFAULTS.max_negatives, label="Max negatives per query", step=1)
            # A list of who has judged, as Evaluate's Labels (a name typed in a text box that
            # matched nobody exported nothing); a name can still be typed.
            export_annotator = gr.Dropdown([MAJORITY_VOTE], value=MAJORITY_VOTE[1], label="Labels (majority vote, or one "
                                           "annotator's alone)", allow_custom_value=True, elem_id="export-labels")
            # /export's `annotator` takes any name: Gradio 6.31 describes a Dropdown to API clients
            # as its choices alone, allow_custom_value or not (the API page said "" only).
            export_annotator.api_info = lambda: {"type": "string"}
        with gr.Row():
            since = gr.Textbox(label="Judged since (YYYY-MM-DD, UTC)", min_width=200)
            until = gr.Textbox(label="Judged until (YYYY-MM-DD, UTC)", min_width=200)
            with gr.Column(min_width=200):  # a Checkbox's own min_width does not reach the page
                agreement_only = gr.Checkbox(label="Only pages annotators agree on")
                mined = gr.Checkbox(label="Add model-mined negatives (unjudged)")
            # 0, not empty, for "the fewest": the browser shows and sends an empty Number as 0.
            # No minimum: Gradio would refuse an emptied box with an error over the panel.
            negatives_per_row = gr.Number(0, label="Negatives per row (sentence-transformers; 0: the fewest any "
                                                   "query has)", step=1, min_width=200)
        with gr.Row():
            preview_button = gr.Button("Preview")
            export_button = gr.Button("Export", variant="primary")
        export_summary = markdown(elem_id="export-summary")
        export_download = gr.File(label="Download", interactive=False, elem_id="export-download")
    return SimpleNamespace(tab=tab, fmt=fmt, rule=rule, k=k, max_negatives=max_negatives,
                           export_annotator=export_annotator, since=since, until=until,
                           agreement_only=agreement_only, mined=mined, negatives_per_row=negatives_per_row,
                           preview_button=preview_button, export_button=export_button,
                           export_summary=export_summary, export_download=export_download)


def wire(arena: Arena, export: SimpleNamespace, demo: gr.Blocks) -> None:
    """Preview, then export (the /export endpoint)."""
    fmt, rule, k, max_negatives = export.fmt, export.rule, export.k, export.max_negatives
    export_annotator, since, until = export.export_annotator, export.since, export.until
    agreement_only, mined, negatives_per_row = export.agreement_only, export.mined, export.negatives_per_row
    preview_button, export_button, export_summary = export.preview_button, export.export_button, export.export_summary
    export_download = export.export_download

    export_inputs = [fmt, rule, k, max_negatives, export_annotator, since, until, agreement_only, mined, negatives_per_row]
    # Also on opening the tab (judgments made since the last preview count) and on another format
    # or rule (the counts on screen were the other one's).
    gr.on([preview_button.click, export.tab.select, fmt.change, rule.change, export_annotator.input],
          lambda *o: preview_view(arena, *o), export_inputs, export_summary, trigger_mode="always_last",
          api_visibility="private")
    # The file offered is always of the options on screen: one made with another format stayed
    # on offer under the new format's counts.
    # (A text box's `input` misses Backspace, Delete, cut and paste: its `change` too, which only
    # the person sets off here.)
    gr.on([*(option.input for option in export_inputs), since.change, until.change], lambda: None, None, export_download,
          queue=False, api_visibility="private")
    # Annotators who judged since the page loaded are offered as soon as the tab opens.
    gr.on([demo.load, export.tab.select, preview_button.click], lambda: label_choices(arena), None, export_annotator,
          api_visibility="private")

    # Whether the options just checked on screen can be exported, and what they select (the file
    # then holds what the preview counted, and the selection, ~1.5 s at 1,000 queries, is not made
    # again). A State is no API parameter: an API client's session keeps True and None, so its
    # /export call reports what is wrong itself, and selects. The export empties `selected` (a
    # large store's selection is MBs; Gradio keeps a closed tab's state for an hour).
    export_ok = gr.State(True)
    selected = gr.State(None)

    # Defaults of None make the empty text boxes optional for API clients (`Client.predict(api_name="/export")`).
    def on_export(fmt, rule, k, max_negatives, annotator=None, since=None, until=None, agreement=False, mined=False,
                  negatives_per_row=None, ok=True, selection=None, request: gr.Request = None):
        """Export the stored judgments as hard-negative training data (zip or parquet file)."""
        if not ok:  # the Preview box says what is wrong: no error over the page, nor in the Download box
            return None, None
        with api_errors(request):
            return export_file(arena, fmt, rule, k, max_negatives, annotator, since, until, agreement, mined,
                               negatives_per_row, selection, gradio_copies=export_download.temp_files), None

    def export_started(*options):
        summary, selection = preview_check(arena, *options)
        return None, summary, selection is not None, selection

    # First the earlier file goes (a failed export left it on offer) and the counts become those
    # of the file about to be made, or what is wrong (a preview of other options stayed on
    # screen); then the export, unless that showed what is wrong, or failed (`success`: with
    # `then`, a store error there went on to write the last click's selection).
    export_button.click(export_started, export_inputs, [export_download, export_summary, export_ok, selected],
                        api_visibility="private",
                        ).success(on_export, [*export_inputs, export_ok, selected], [export_download, selected],
                                  api_name="export")
