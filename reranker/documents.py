"""Uploaded PDFs and images → `Page` objects: an RGB image, a content hash, where it came from.

Everything users upload passes through here, so the input is treated as broken or hostile until
proven otherwise: the type comes from the bytes, not the extension; file size and pixel counts are
checked before anything is decoded; and a bad file or page becomes a `Problem` in the result while
the good ones carry on.

    result = load_files(["report.pdf", ("scan.png", png_bytes)])
    result.pages       # every page that rendered, in upload order
    result.problems    # what went wrong, per file or page: str(problem) is a readable sentence
    result.notes       # what was done on the user's behalf (lower DPI, skipped pages, duplicates)
    result.documents   # one summary per file, for the store

With `cache=` (an `LRUCache`), a file already loaded with the same bytes, name and options is not
read into pages again: asking a new question about the same upload skips the rendering.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import os
import re
import stat
import struct
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from PIL import Image, ImageOps

from .image_structure import too_slow_to_read
from .imaging import MAX_ASPECT_RATIO, image_hash, processor_rgb
from .lru import LRUCache
from .rendering import OutOfTime, PageFailed, PageTooSlow, PdfFacts, RenderSettings, Stopped, open_pdf
from .workers import refuse_in_a_rerun_script

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_DPI",
    "Document",
    "DocumentError",
    "IngestOptions",
    "Ingested",
    "Page",
    "Problem",
    "RenderSpeed",
    "ingest_cache",
    "load_file",
    "load_files",
    "render_speed",
]

DEFAULT_DPI = 144
# PDF render resolutions taken: below, text is unreadable to the models; above, the page-pixel cap
# renders a letter page at ~470 DPI anyway (and infinity rendered every page at 0×0 pixels).
DPI_RANGE = (36.0, 600.0)
# Pillow plugin ids we accept. (Camera JPEGs holding several pictures open through "JPEG" as MPO.)
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP", "GIF")
SUPPORTED = "a PDF or a PNG, JPEG, WebP, TIFF, BMP or GIF image"
_KNOWN_EXTENSIONS = {".pdf", ".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp", ".gif"}

@dataclass(frozen=True)
class IngestOptions:
    dpi: float = DEFAULT_DPI
    max_file_bytes: int = 100_000_000
    max_pages: int = 200  # per call of load_files, across all its files
    max_page_pixels: int = 12_000_000  # larger pages are rendered (or scaled) down to fit
    # Per call of load_files too: the pages' RGB pixels held in memory (400 MP: 1.2 GB, 200 letter
    # pages at 144 DPI). Without it a tiny PDF of 200 poster-size pages would hold 7 GB.
    max_total_pixels: int = 400_000_000
    # Larger images are refused from their header, never decoded. Below Pillow's own warning
    # threshold (~89.5 MP), so accepted images never trip Pillow's DecompressionBombWarning.
    max_image_pixels: int = 80_000_000
    # PDF pages render in worker processes (see reranker.rendering): MuPDF is not thread-safe and
    # keeps the GIL, and a page may be built to render for minutes. 0: one process per available
    # CPU up to 8 (a container's quota counts).
    render_workers: int = 0
    page_render_seconds: float = 15.0  # opening a PDF, or rendering one of its pages, that takes longer is given up (a problem)
    # Per call of load_files: PDF pages not rendered by then are skipped (200 pages that each
    # take just under the page limit would otherwise hold the render processes for an hour).
    max_render_seconds: float = 120.0

    def __post_init__(self):
        if self.render_workers < 0:
            raise ValueError(f"IngestOptions.render_workers must be >= 0, got {self.render_workers!r}")
        for name in ("dpi", "max_file_bytes", "max_pages", "max_page_pixels", "max_total_pixels", "max_image_pixels",
                     "page_render_seconds", "max_render_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"IngestOptions.{name} must be positive, got {getattr(self, name)!r}")
        if not DPI_RANGE[0] <= self.dpi <= DPI_RANGE[1]:
            raise ValueError(f"IngestOptions.dpi must be from {DPI_RANGE[0]:g} to {DPI_RANGE[1]:g}, got {self.dpi!r}")


def page_label(source: str, page_number: int, kind: str | None, page_count: int | None) -> str:
    """How a page is named wherever it is shown: "report.pdf · p.3", or just "photo.jpg" for an
    image that is the whole document (a multi-page TIFF's frames have page numbers)."""
    if kind == "image" and page_count == 1:
        return source
    return f"{source} · p.{page_number}"


@dataclass(frozen=True)
class Page:
    content_hash: str  # reranker.imaging.image_hash of `image`: same pixels, same id
    image: Image.Image = field(compare=False, repr=False)  # RGB
    source: str  # file base name, never a server path
    page_number: int  # 1-based
    document_hash: str  # Document.content_hash of the file it came from
    kind: str  # "pdf" or "image"
    page_count: int = 1  # pages in that document

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size

    @property
    def label(self) -> str:
        return page_label(self.source, self.page_number, self.kind, self.page_count)


@dataclass(frozen=True)
class Problem:
    source: str
    message: str
    page: int | None = None

    def __str__(self) -> str:
        where = self.source if self.page is None else f"{self.source}, page {self.page}"
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Document:
    content_hash: str  # sha256 of the file's bytes
    name: str
    kind: str  # "pdf" or "image"
    page_count: int  # pages in the file (some may not have been loaded: see Ingested.notes)


@dataclass
class Ingested:
    pages: list[Page] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    documents: list[Document] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: Ingested) -> None:
        self.pages.extend(other.pages)
        self.problems.extend(other.problems)
        self.documents.extend(other.documents)
        self.notes.extend(other.notes)

    def duplicates(self) -> list[tuple[Page, Page]]:
        """(page, earlier page with the same pixels) for every repeated page."""
        first: dict[str, Page] = {}
        pairs = []
        for page in self.pages:
            if page.content_hash in first:
                pairs.append((page, first[page.content_hash]))
            else:
                first[page.content_hash] = page
        return pairs


class DocumentError(Exception):
    """Raised by `load_file` (single-file mode); `problems` says what went wrong."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__("; ".join(map(str, self.problems)))


class _Refused(Exception):
    """Internal: a file or page cannot be used; the message becomes a Problem."""


FileInput = str | os.PathLike | tuple[str, bytes]


# What a cached file and each of its pages hold besides pixels and texts: the key, the objects, the
# lists, the hashes. Measured with tracemalloc: ~1.2 KB a file with no usable page (one that does
# not decode, a strip too narrow), ~1.7 KB a 4×4 page. Charged at 1 byte a file and 48 a page,
# a 1 GiB cache was bounded at ~1e9 entries; at these, ~260,000.
FILE_OVERHEAD_BYTES = 4096
PAGE_OVERHEAD_BYTES = 4096


def page_memory_bytes(page: Page) -> int:
    """What a page held in memory costs a cache: its RGB pixels and the objects around them."""
    return page.width * page.height * 3 + PAGE_OVERHEAD_BYTES


@dataclass(frozen=True)
class _LoadedFile:
    """What one file added to a result, kept by the ingest cache."""

    added: Ingested
    page_count: int
    considered: int  # pages of it the limits left room for (the rest were skipped)

    @property
    def nbytes(self) -> int:
        texts = [text for problem in self.added.problems for text in (problem.source, problem.message)]
        return (FILE_OVERHEAD_BYTES + sum(map(page_memory_bytes, self.added.pages))
                + sum(map(sys.getsizeof, texts + self.added.notes)))


def ingest_cache(max_bytes: int = 2**30) -> LRUCache:
    """A cache for `load_files(..., cache=)`, bounded by the RGB bytes of the pages it holds."""
    return LRUCache(max_bytes)


def load_files(files: Iterable[FileInput], options: IngestOptions | None = None, cache: LRUCache | None = None) -> Ingested:
    """Pages of every usable file (paths, or (name, bytes) pairs), plus problems and notes.

    Never raises for a bad file: each becomes a Problem and the others are still loaded. At most
    `options.max_pages` pages are rendered over the whole batch; the rest are listed in a note.
    `cache`: see `ingest_cache`; a hit gives the same pages, problems and notes as loading anew.
    """
    refuse_in_a_rerun_script("load_files")
    options = options or IngestOptions()
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    result = Ingested()
    budget, pixels = options.max_pages, options.max_total_pixels  # what is left of the limits
    deadline = time.monotonic() + options.max_render_seconds
    skipped: list[str] = []
    pixel_limited = False
    seen: dict[tuple[str, str], str] = {}  # (file hash, name) read in this call → the name it is shown under
    named: dict[str, str] = {}  # name shown → the file hash it names in this call
    for number, item in enumerate(files, start=1):
        if not (isinstance(item, (str, bytes, os.PathLike)) or (isinstance(item, tuple) and len(item) == 2)):
            result.problems.append(Problem(f"upload #{number}", f"is not a file path or a (name, bytes) pair: {type(item).__name__}"))
            continue
        if isinstance(item, bytes) and (b"\0" in item or b"\n" in item or len(item) > 4096):  # contents, not a path
            result.problems.append(Problem(f"upload #{number}", "is a file's contents without a name: pass (name, bytes), "
                                                                 "e.g. (\"report.pdf\", data)"))
            continue
        name = _display_name(item)
        try:
            data = _read(item, options)
            document_hash = hashlib.sha256(data).hexdigest()
            if (shown := seen.get((document_hash, name))) is not None:  # added to the upload box twice: read once
                result.notes.append(f"{shown} was uploaded twice; it was read once.")
                continue
            seen[document_hash, name] = name
            if named.setdefault(name, document_hash) != document_hash:
                # Another file of this name (a/scan.png, b/scan.png): its pages would carry the
                # same label as the first's everywhere, the exports included.
                renamed = _unused_name(name, named)
                result.notes.append(f"Two different files are named {name}: the later one is shown as {renamed}.")
                # Given again under either name (b/scan.png, or "scan (2).png" itself), it is this file.
                seen[document_hash, name] = seen[document_hash, renamed] = renamed
                name = renamed
                named[name] = document_hash
            key = (document_hash, name, options, budget, pixels)
            loaded = cache.get(key) if cache is not None else None
            if loaded is None:
                added = Ingested()
                page_count, considered, cacheable = _ingest(name, data, document_hash, options, budget, pixels, deadline,
                                                            added)
                loaded = _LoadedFile(added, page_count, considered)
                if cache is not None and cacheable:
                    cache.put(key, loaded, loaded.nbytes)
            result.extend(loaded.added)
            page_count, considered = loaded.page_count, loaded.considered
        except _Refused as refusal:
            result.problems.append(Problem(name, str(refusal)))
            continue
        except Exception as error:  # batch mode never raises for one bad file
            result.problems.append(Problem(name, f"could not be loaded ({type(error).__name__}: {error})"))
            continue
        if considered < page_count:
            skipped.append(name if considered == 0 else f"{name} {_page_list(list(range(considered + 1, page_count + 1)))}")
            pixel_limited |= considered < min(budget, page_count)
        budget -= considered
        pixels -= sum(page.width * page.height for page in loaded.added.pages)
    if len(skipped) > SKIPPED_FILES_NAMED:  # 3,000 files in one upload named 2,800 of them
        skipped = [*skipped[:SKIPPED_FILES_NAMED], f"and {len(skipped) - SKIPPED_FILES_NAMED:,} more files"]
    if skipped and pixel_limited:
        result.notes.append(
            f"Not every page was loaded: the pages of one upload may hold {_pixels(options.max_total_pixels)} "
            f"in all (and at most {options.max_pages} pages); lower the DPI or upload fewer pages at a "
            f"time. Skipped: {', '.join(skipped)}."
        )
    elif skipped:
        result.notes.append(
            f"Only the first {options.max_pages} pages were loaded (the limit per upload); "
            f"skipped: {', '.join(skipped)}."
        )
    if duplicates := result.duplicates():
        listed = "; ".join(f"{page.label} = {first.label}" for page, first in duplicates[:5])
        more = f" and {len(duplicates) - 5} more" if len(duplicates) > 5 else ""
        result.notes.append(f"{len(duplicates)} page(s) identical to an earlier page: {listed}{more}.")
    return result


def load_file(file: FileInput, options: IngestOptions | None = None) -> list[Page]:
    """All pages of one file; raises DocumentError if anything about it went wrong."""
    result = load_files([file], options)
    if result.problems:
        raise DocumentError(result.problems)
    return result.pages


# --- reading and sniffing ----------------------------------------------------------------------


def _unused_name(name: str, named: Mapping[str, str]) -> str:
    """`name` with the first free " (2)", " (3)" … before its extension, as browsers name downloads."""
    stem, dot, extension = name.rpartition(".") if "." in name.lstrip(".") else (name, "", "")
    number = 2
    while (candidate := f"{stem} ({number}){dot}{extension}") in named:
        number += 1
    return candidate


# Characters that reorder or hide text where a file name is shown: C0/C1 controls and the line and
# paragraph separators (a line break would start a new line of a message) and the bidirectional
# embeddings, overrides and isolates ("invoice\u202Efdp.exe" shows as "invoiceexe.pdf"). Shown as
# "[U+202E]": the name says what it holds. So are lone surrogates: os.fsdecode's stand-ins for the
# bytes of a name that is not UTF-8 ("caf\xe9.png" becomes "caf[U+DCE9].png"), which no UTF-8
# text (SQLite, JSON, the console) can hold.
_HIDDEN_IN_NAMES = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _display_name(item: FileInput) -> str:
    raw = item[0] if isinstance(item, tuple) else os.fsdecode(item)
    name = re.split(r"[\\/]", str(raw))[-1] or "upload"  # base name only, Windows paths too
    return _HIDDEN_IN_NAMES.sub(lambda match: f"[U+{ord(match.group()):04X}]", name)


def _read(item: FileInput, options: IngestOptions) -> bytes:
    data = None
    try:
        if isinstance(item, tuple):
            data = bytes(item[1])
            size = len(data)
        else:
            status = os.stat(item)
            size = status.st_size  # checked before reading: an oversized upload never loads
    except (OSError, TypeError) as error:
        raise _Refused(f"could not be read ({getattr(error, 'strerror', None) or error})") from None
    if data is None and stat.S_ISDIR(status.st_mode):
        raise _Refused("is a folder, not a file; give the files in it")
    if data is None and not stat.S_ISREG(status.st_mode):  # a pipe could block the read for good
        raise _Refused("is not a regular file (a pipe, a device or a socket); save what it holds to a file first")
    if size == 0:
        raise _Refused("empty file (0 bytes); the upload may have failed, try again")
    if size > options.max_file_bytes:
        raise _Refused(
            f"file too large ({_bytes(size)}; the limit is {_bytes(options.max_file_bytes)} per file); "
            "split or compress it and upload the parts"
        )
    if data is None:
        try:
            with open(item, "rb") as handle:
                data = handle.read()
        except OSError as error:  # a directory, no permission, gone since the stat
            raise _Refused(f"could not be read ({error.strerror or error})") from None
    return data


def _ingest(name: str, data: bytes, document_hash: str, options: IngestOptions, budget: int, pixels: int,
            deadline: float, result: Ingested) -> tuple[int, int, bool]:
    """Add the file's pages (at most `budget` pages, `pixels` pixels in all) to `result`; return
    how many pages the file has, how many of them the limits left room for, and whether the
    result is worth caching (no page ran out of time or crashed the renderer: another try may
    do better). `deadline`: time.monotonic() after which PDF pages are no longer rendered."""
    # The bytes decide, not the name. An image first, unless the file plainly starts as a PDF;
    # then a PDF whose header follows some junk (allowed within the first 1024 bytes), unless
    # the junk is another format's header: a ZIP or tar archive holds its PDFs as they are, and
    # MuPDF "repaired" one into its last PDF, the others dropped without a word.
    image = None
    if not data[:1024].lstrip().startswith(b"%PDF-"):
        if (too_slow := too_slow_to_read(data, tiff_pages=TIFF_PAGES_COUNTED + 1)) is not None:
            raise _Refused(too_slow)
        image = _open_image(data)
    if image is None and b"%PDF-" in data[:1024] and _known_format(data) is None:
        settings = RenderSettings(options.dpi, options.max_page_pixels, options.render_workers, options.page_render_seconds)
        with open_pdf(data, settings, deadline) as pdf:
            try:
                facts = pdf.inspect(limit=budget)
            except PageFailed as failure:
                raise _Refused(str(failure)) from None
            except OutOfTime as error:
                raise _Refused(_out_of_time("not opened", options, error)) from None
            truncated = _check_pdf(name, data, facts, result)
            wanted = _pages_within(facts.page_sizes, options, pixels, min(budget, facts.page_count))
            pdf.start(wanted)
            considered = _add_pages(name, document_hash, "pdf", facts.page_count, pdf.render, budget, pixels, options,
                                    result, drop_blank=truncated)
        return facts.page_count, considered, not pdf.interrupted
    if image is None:
        raise _Refused(_not_supported(name, data))
    with image:
        try:  # only TIFF holds pages; other formats' extra frames are animation or previews
            page_count, cut_short = _tiff_pages(image) if image.format == "TIFF" else (1, False)
            if page_count > TIFF_PAGES_COUNTED:
                page_count = TIFF_PAGES_COUNTED
                result.notes.append(f"{name}: a TIFF of more than {TIFF_PAGES_COUNTED:,} pages; the pages after "
                                    "those were not looked at.")
            animated = image.format in ("GIF", "WEBP", "PNG") and getattr(image, "is_animated", False)
        except Exception as error:
            raise _Refused(f"damaged image that cannot be opened ({error}); upload it again") from None
        if cut_short:
            read = "page 1" if page_count == 1 else f"pages 1–{page_count}"
            result.problems.append(Problem(name, f"the TIFF is cut short or damaged after page {page_count}: only "
                                                 f"{read} could be read — upload the complete file"))
        if animated:
            result.notes.append(f"{name}: animated image, only its first frame was used.")
        unturned: list[int] = []
        considered = _add_pages(name, document_hash, "image", page_count,
                                lambda i: _render_frame(image, i, options, unturned), budget, pixels, options, result)
    if unturned:
        what = "its EXIF data" if page_count == 1 else f"the EXIF data of {_page_list(unturned)}"
        result.notes.append(f"{name}: {what} (which says which way up to show it) could not be read, so it is "
                            "shown as stored.")
    return page_count, considered, True


# Pillow counts a TIFF's pages by walking all of them, with a list lookup each (quadratic: a 13 MB
# file of 100,000 one-pixel pages took 100 s, in the request's thread): counted up to this many.
TIFF_PAGES_COUNTED = 1000


def _tiff_pages(image: Image.Image) -> tuple[int, bool]:
    """The pages of a TIFF, counted up to TIFF_PAGES_COUNTED + 1, and whether the next page
    after those could not be read (the file cut short or damaged there); the image is left on
    its first."""
    count = 1
    try:
        while count <= TIFF_PAGES_COUNTED:
            image.seek(count)
            count += 1
    except EOFError:  # the last page
        pass
    except Exception:  # a page cut short ("Missing dimensions"): the pages before it still read
        image.seek(0)
        return count, True
    image.seek(0)
    return count, False


def _add_pages(name: str, document_hash: str, kind: str, page_count: int,
               render: Callable[[int], tuple], budget: int, pixels: int,
               options: IngestOptions, result: Ingested,
               drop_blank: bool = False) -> int:
    """`render(index)` gives (image, scale) or (image, scale, content hash) for page `index`.
    Returns how many pages were considered: the page that would take the pixels over `pixels`,
    and every page after it, are not. `drop_blank` (a PDF cut short): pages that come out one
    flat colour are what MuPDF made of a page whose content is gone, not pages to rank or judge."""
    pages, reduced, blank, slow = [], [], [], []
    considered = min(budget, page_count)
    for index in range(considered):
        number = index + 1 if page_count > 1 or kind == "pdf" else None
        try:
            image, scale, *known_hash = render(index)
        except (_Refused, PageFailed) as refusal:
            result.problems.append(Problem(name, str(refusal), number))
            if isinstance(refusal, PageTooSlow):
                slow.append(index + 1)
                if len(slow) == SLOW_PAGES_PER_FILE and index + 1 < considered:
                    # Each slow page holds a render worker its whole time limit: a file of many such
                    # pages held its upload (and a ranking slot) until the upload's deadline.
                    pages_left = _page_list(list(range(index + 2, considered + 1)))
                    result.problems.append(Problem(name, f"{pages_left} not rendered: {_page_list(slow)} each took over "
                                                         f"{options.page_render_seconds:g} s, so the rest of the file "
                                                         "was given up"))
                    break
            continue
        except OutOfTime as error:
            pages_left = _page_list(list(range(index + 1, considered + 1)))
            result.problems.append(Problem(name, _out_of_time(f"{pages_left} not rendered", options, error)))
            break
        except Exception as error:  # one broken page must not sink the rest of the file
            verb = "rendered" if kind == "pdf" else "decoded"
            result.problems.append(Problem(
                name, f"could not be {verb} ({type(error).__name__}: {error}); the file may be damaged or incomplete",
                number))
            continue
        if max(image.size) > MAX_ASPECT_RATIO * min(image.size):
            result.problems.append(Problem(
                name, f"is a {image.width}×{image.height} px strip, too narrow for the models "
                      f"(at most {MAX_ASPECT_RATIO}:1); crop it into pages", number))
            continue
        if drop_blank and _one_colour(image):
            blank.append(index + 1)
            continue
        if image.width * image.height > pixels:
            considered = index
            break
        pixels -= image.width * image.height
        if scale < 1:
            reduced.append((index + 1, scale))
        content_hash = known_hash[0] if known_hash else image_hash(image)
        # A page is its pixels. The file's metadata would go into every file made from the page:
        # Pillow's JPEG writer copies a GIF's comment, and one over 64 KiB failed every thumbnail.
        image.info.clear()
        pages.append(Page(content_hash, image, name, index + 1, document_hash, kind, page_count))
    if pages:
        result.documents.append(Document(document_hash, name, kind, page_count))
        result.pages.extend(pages)
    if blank:
        result.problems.append(Problem(name, f"{_page_list(blank)} came out blank, their content lost where the "
                                             f"file is truncated, so {'it was' if len(blank) == 1 else 'they were'} "
                                             "left out"))
    if reduced:
        where = f"{_page_list([n for n, _ in reduced])} " if page_count > 1 else ""
        cap = _pixels(options.max_page_pixels)
        lowest = min(scale for _, scale in reduced)
        if kind == "pdf":
            result.notes.append(f"{name}: {where}over {cap} at {options.dpi:g} DPI, so rendered at "
                                f"{options.dpi * lowest:.0f} DPI instead.")
        else:
            result.notes.append(f"{name}: {where}over {cap}, so scaled down to {lowest:.0%} of its size.")
    return considered


# Files a note names as skipped by the upload's limits; the rest are counted.
SKIPPED_FILES_NAMED = 10

# Pages of one PDF that may each run into the render time limit before the rest of it is given up.
SLOW_PAGES_PER_FILE = 2


def _pages_within(sizes: tuple[tuple[float, float], ...], options: IngestOptions, pixels: int, limit: int) -> int:
    """How many of the first `limit` pages (their `sizes` in points) fit in `pixels`, so worker
    processes do not render pages the limit will drop. An estimate: `_add_pages` decides."""
    zoom = options.dpi / 72
    for index, (width, height) in enumerate(sizes[:limit]):
        pixels -= min(width * height * zoom * zoom, options.max_page_pixels)
        if pixels < 0:
            return index + 1  # one more than fits: MuPDF's whole-pixel rounding may still let it in
    return limit


def _out_of_time(what: str, options: IngestOptions, error: OutOfTime) -> str:
    if isinstance(error, Stopped):
        return f"{what}: the app is shutting down"
    return f"{what}: this upload took over {options.max_render_seconds:g} s to read; upload fewer pages at a time"


# --- PDFs --------------------------------------------------------------------------------------


def _check_pdf(name: str, data: bytes, facts: PdfFacts, result: Ingested) -> bool:
    """Refuse a PDF that cannot be used; note one MuPDF had to repair. Returns whether the file
    seems cut short (its blank pages are then left out)."""
    if facts.security_handler is not None:  # not damaged: downloading it again would not help
        raise _Refused("PDF protected by a certificate or rights management (DRM), which this app cannot open. "
                       "Save an unprotected copy (for example print it to a new PDF where it opens) and upload that file")
    if facts.open_error is not None:
        raise _Refused(f"damaged PDF that cannot be opened ({facts.open_error}); it may be truncated — "
                       "export or download it again")
    # Many "encrypted" PDFs only restrict printing or copying and open with an empty password.
    if facts.locked:
        raise _Refused("password-protected PDF: it cannot be opened without its password. Remove the "
                       "protection (for example print or save it as a new PDF) and upload that file")
    if facts.page_tree_broken:
        raise _Refused("damaged PDF: its list of pages cannot be read, so none of them can be found — "
                       "export or download it again")
    if facts.listed_pages > facts.page_count:  # the pages that are there are kept
        first, last = facts.page_count + 1, facts.listed_pages
        missing = f"page {first} is" if first == last else f"pages {first}–{last} are"
        message = f"damaged PDF: {missing} listed in it but missing — export or download it again"
        if facts.page_count == 0:
            raise _Refused(message)
        result.problems.append(Problem(name, message))
    if facts.page_count == 0:
        raise _Refused("the PDF has no pages, so there is nothing to show; check it is the right file")
    if facts.repaired:
        # MuPDF rebuilds a broken cross-reference table from what it finds; without the final
        # %%EOF the file was cut short and pages may come out blank or incomplete.
        if b"%%EOF" not in data[-1024:]:
            result.problems.append(Problem(name, f"the PDF seems truncated (no end-of-file marker); "
                                                 f"{facts.page_count} page(s) were recovered but may be blank "
                                                 "or incomplete — upload the complete file"))
            return True
        result.notes.append(f"{name}: the PDF had structural errors that were repaired; check its pages.")
    return False


def _one_colour(image: Image.Image) -> bool:
    """Every pixel the same (each band's lowest value is its highest)."""
    extrema = image.getextrema()
    bands = extrema if isinstance(extrema[0], tuple) else (extrema,)
    return all(low == high for low, high in bands)


# --- images ------------------------------------------------------------------------------------


def ignore_pillow_size_warning() -> None:
    """For the app's and the command line's process: Pillow prints a DecompressionBombWarning on
    stderr as it opens an image over ~89.5 MP, one that ingest then refuses by name from its header
    (`max_image_pixels`), so the warning only repeats that on the console. A process-wide filter,
    so the entry points set it, not this module's import."""
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _open_image(data: bytes) -> Image.Image | None:
    """The image with only its header read, or None if it is none of IMAGE_FORMATS."""
    try:
        return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.UnidentifiedImageError:
        return None
    except Image.DecompressionBombError:
        pass
    except Exception as error:  # a recognised but broken header
        raise _Refused(f"damaged image that cannot be opened ({error}); upload it again") from None
    # Pillow refuses images over twice its process-wide MAX_IMAGE_PIXELS before returning the
    # header. Read the header with the format's own parser instead (what Image.open does, minus
    # that check), so our max_image_pixels decides and the message can give the real size —
    # without touching the global setting, which would leak into other threads.
    for format_id in IMAGE_FORMATS:
        factory, accept = Image.OPEN[format_id]
        if accept is not None and accept(data[:16]) is not True:
            continue
        try:
            return factory(io.BytesIO(data))
        except (SyntaxError, IndexError, TypeError, struct.error, Image.DecompressionBombError):
            continue  # not this format, or (GIF) Pillow checks again while reading the first frame
    raise _Refused("image too large to open safely (Pillow refuses it); scale it down and upload it again")


def _render_frame(image: Image.Image, index: int, options: IngestOptions,
                  unturned: list[int]) -> tuple[Image.Image, float]:
    """Page `index`, turned as its EXIF says; if that cannot be read, as stored, and its page
    number added to `unturned`."""
    if index:
        image.seek(index)
    width, height = image.size  # from the header: nothing decoded yet
    if width * height > options.max_image_pixels:
        raise _Refused(f"image too large: {width:,}×{height:,} pixels ({_pixels(width * height)}), over the limit "
                       f"of {_pixels(options.max_image_pixels)}; scale it down and upload it again")
    image.load()  # first: a picture that does not decode is reported as such
    try:
        upright = ImageOps.exif_transpose(image)  # a copy turned the way the camera meant
    except Exception:  # malformed EXIF (a PNG's eXIf chunk, which browsers ignore): the pixels are fine
        upright = image.copy()
        unturned.append(index + 1)
    return _fit(_to_rgb(upright), options.max_page_pixels)


def _to_rgb(image: Image.Image) -> Image.Image:
    key_alpha = None
    if (image.mode.startswith("I") or image.mode == "F") and image.info.get("transparency") is not None:
        # A colour key (a 16-bit PNG's tRNS) is for the unscaled image: the pixels it makes
        # transparent are those Pillow's own conversion of it finds, as in the models' references
        # (see `processor_rgb`; Pillow compares the key with the values clipped to 8 bits); tested
        # after scaling, other pixels matched it.
        key_alpha = image.convert("LA").getchannel("A")
    if image.mode.startswith("I;16"):
        # 16-bit grey: convert() would clip at 255 (mostly white) instead of scaling.
        image = image.convert("I").point(lambda v: v / 257)
    elif image.mode in ("I", "F"):
        low, high = image.getextrema()  # range unknown: stretch it over 0–255
        if image.mode == "F" and 0 <= low and high <= 1:  # floats from 0 (black) to 1 (white): all black before
            image = image.point(lambda v: v * 255 + 0.5)  # rounded (the conversion to 8 bits truncates)
        elif low < 0 or high > 255:
            k = 255 / max(high - low, 1)
            image = image.point(lambda v: v * k - low * k)
    if key_alpha is not None:
        image = image.convert("L")
        image.putalpha(key_alpha)
        image.info.pop("transparency", None)  # now the alpha band
    # Any transparency (alpha band, transparent palette entry or colour key) laid on white, as
    # the transformers processor does; CMYK, palette, grey, bilevel, YCbCr: Pillow's conversions.
    return processor_rgb(image)


def _fit(image: Image.Image, max_pixels: int) -> tuple[Image.Image, float]:
    pixels = image.width * image.height
    if pixels <= max_pixels:
        return image, 1.0
    scale = math.sqrt(max_pixels / pixels)
    size = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
    if max(size) > MAX_ASPECT_RATIO * min(size) and max(image.size) <= MAX_ASPECT_RATIO * min(image.size):
        # Both sides cut down made a strip the models take (200:1) one they refuse (200.8:1):
        # the short side rounds up instead, the long side down as far as the pixels allow.
        wide = image.width >= image.height
        short = max(1, math.ceil(min(image.size) * scale))
        long = min(int(max(image.size) * scale), max_pixels // short)
        size = (long, short) if wide else (short, long)
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0), scale


# --- messages ----------------------------------------------------------------------------------

_SIGNATURES = (
    (b"PK\x03\x04", "a ZIP archive (unpack it and upload its files; Word, PowerPoint and Excel files are ZIP "
                     "archives too: save those as PDF first)"),
    (b"\xd0\xcf\x11\xe0", "an older Microsoft Office file (save it as PDF first)"),
    (b"{\\rtf", "an RTF document (save it as PDF first)"),
    (b"%!PS", "a PostScript file (convert it to PDF first)"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"8BPS", "a Photoshop file (export it as PNG or JPEG first)"),
)


# The first bytes of the image formats read (WebP: "RIFF", its size, then "WEBP").
_IMAGE_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
                     (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"BM", "BMP"))


def _not_supported(name: str, data: bytes) -> str:
    image = next((what for magic, what in _IMAGE_SIGNATURES if data.startswith(magic)), None)
    if image is None and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        image = "WebP"
    if image is not None:  # it says it is one, yet Pillow cannot read its header
        return f"damaged {image} image: its header cannot be read; upload it again"
    extension = os.path.splitext(name)[1].lower()
    despite = f" despite its {extension} extension" if extension in _KNOWN_EXTENSIONS else ""
    return f"not a PDF or a supported image{despite}: it looks like {_looks_like(data)}. Upload {SUPPORTED}."


def _known_format(data: bytes) -> str | None:
    """What a file whose first bytes name a format other than PDF or an image is, else None."""
    for magic, what in _SIGNATURES:
        if data.startswith(magic):
            return what
    if data[257:262] == b"ustar":  # its first file's name comes first; the format's mark follows
        return "a tar archive (unpack it and upload its files)"
    return None


def _looks_like(data: bytes) -> str:
    if what := _known_format(data):
        return what
    if data[4:8] == b"ftyp":  # ISO media: HEIC/AVIF photos, MP4/MOV videos
        if data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"avif"):
            return "a HEIC/AVIF photo (export it as JPEG or PNG first)"
        return "a video or audio file"
    head = data[:4096]
    if b"\0" not in head:  # almost every binary format has NUL bytes early on
        text = head.decode("utf-8", errors="replace").lstrip().lower()
        if text.startswith(("<!doctype html", "<html")):
            return "a web page (HTML)"
        if "<svg" in text:
            return "an SVG drawing (export it as PNG or PDF first)"
        return "a text file"
    return "binary data of an unknown kind"


def _bytes(count: int) -> str:
    return f"{count / 1e6:,.1f} MB" if count >= 1e6 else f"{count:,} bytes"


def _pixels(count: int) -> str:
    return f"{count / 1e6:,.1f} megapixels" if count >= 1e6 else f"{count:,} pixels"


def _page_list(numbers: list[int]) -> str:
    """[1, 2, 3, 7] → 'pages 1–3, 7'."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    parts = [str(run[0]) if len(run) == 1 else f"{run[0]}–{run[-1]}" for run in runs]
    return ("page " if len(numbers) == 1 else "pages ") + ", ".join(parts)


# --- benchmark hook ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderSpeed:
    pages: int
    seconds: float
    dpi: float

    @property
    def pages_per_second(self) -> float:
        return self.pages / self.seconds if self.seconds > 0 else math.inf


def render_speed(pdf_bytes: bytes, dpi: float = DEFAULT_DPI, max_page_pixels: int = 12_000_000,
                 render_workers: int = 0) -> RenderSpeed:
    """Wall time to ingest every page of one PDF (render, convert to PIL, hash), for the benchmark.

    `render_workers`: as in IngestOptions (0: the default for this machine, 1: one process).
    """
    options = IngestOptions(dpi=dpi, max_file_bytes=max(1, len(pdf_bytes)), max_pages=sys.maxsize,
                            max_page_pixels=max_page_pixels, max_total_pixels=sys.maxsize,
                            render_workers=render_workers, max_render_seconds=math.inf)
    start = time.perf_counter()
    result = load_files([("benchmark.pdf", pdf_bytes)], options)
    seconds = time.perf_counter() - start
    if result.problems:
        raise DocumentError(result.problems)
    return RenderSpeed(len(result.pages), seconds, dpi)
