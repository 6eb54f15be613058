"""Document ingestion: every odd or broken upload gives the right pages or a clear problem.

The corpus is built on the fly (tests/bad_inputs.py); nothing here times anything.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct

import pymupdf
import pytest
from PIL import Image, ImageChops, ImageFile, ImageStat

from reranker.documents import (
    Document,
    DocumentError,
    IngestOptions,
    Ingested,
    Page,
    Problem,
    load_file,
    load_files,
    render_speed,
)
from reranker.imaging import image_hash

from . import bad_inputs as corpus


def pages_of(result: Ingested, name: str) -> list[Page]:
    return [page for page in result.pages if page.source == name]


def problems_of(result: Ingested, name: str) -> list[Problem]:
    return [problem for problem in result.problems if problem.source == name]


def only_page(name: str, data: bytes, options: IngestOptions | None = None) -> Page:
    (page,) = load_file((name, data), options)
    return page


def mean_difference(a: Image.Image, b: Image.Image) -> float:
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


# --- one batch of everything ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_paths(tmp_path_factory):
    return corpus.write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def batch(corpus_paths):
    return load_files(corpus_paths.values())


@pytest.mark.parametrize("name", list(corpus.CORPUS))
def test_each_corpus_file_gives_its_pages_or_its_problem(batch, name):
    expect = corpus.CORPUS[name][1]
    pages, problems = pages_of(batch, name), problems_of(batch, name)
    if expect.pages is not None:
        assert len(pages) == expect.pages, [str(p) for p in problems]
    if expect.problem is None:
        assert problems == []
    else:
        assert problems, f"{name} should have been reported"
        assert all(expect.problem in problem.message for problem in problems), [str(p) for p in problems]
    if expect.kind:
        assert {page.kind for page in pages} == {expect.kind}
    for page in pages:
        assert page.image.mode == "RGB"
        assert page.content_hash == image_hash(page.image)


def test_good_files_are_untouched_by_bad_neighbours(batch, corpus_paths):
    good = [name for name, (_, expect) in corpus.CORPUS.items() if expect.problem is None]
    for name in good:
        alone = load_file(corpus_paths[name])
        assert [p.content_hash for p in pages_of(batch, name)] == [p.content_hash for p in alone]
    # Every bad file is reported once (per file, not per page), and never as a crash.
    assert {problem.source for problem in batch.problems} == {
        name for name, (_, expect) in corpus.CORPUS.items() if expect.problem
    }
    assert not any("could not be loaded" in problem.message for problem in batch.problems)


def test_batch_keeps_upload_order_and_page_order(batch):
    order = list(corpus.CORPUS)
    positions = [(order.index(page.source), page.page_number) for page in batch.pages]
    assert positions == sorted(positions)


def test_documents_summarise_each_loaded_file(batch, corpus_paths):
    by_name = {document.name: document for document in batch.documents}
    tiff = by_name["scan.tif"]
    assert tiff == Document(hashlib.sha256(corpus_paths["scan.tif"].read_bytes()).hexdigest(), "scan.tif", "image", 3)
    assert by_name["good.pdf"].kind == "pdf" and by_name["good.pdf"].page_count == 2
    assert "encrypted.pdf" not in by_name and "bomb.png" not in by_name
    for page in batch.pages:
        assert page.document_hash == by_name[page.source].content_hash
        assert page.page_count == by_name[page.source].page_count


def test_sources_are_base_names_never_server_paths(batch, corpus_paths):
    assert all("/" not in page.source for page in batch.pages)
    assert all("/" not in str(problem) for problem in batch.problems)
    (page,) = load_file(("C:\\Users\\someone\\Desktop\\scan.png", corpus.plain_png()))
    assert page.source == "scan.png"


def test_characters_that_disguise_a_file_name_are_shown_as_code_points():
    """A right-to-left override made "invoice\u202Efdp.png" display as "invoicegnp.pdf", and a line
    break in a name split every message naming it: such characters are written out instead."""
    result = load_files([("invoice\u202efdp.png", corpus.plain_png()), ("two\nlines\u2066\u2028.png", corpus.plain_png((9, 9, 9))),
                         ("Jahresbericht – Ü 2024 تقرير.png", corpus.plain_png((7, 7, 7)))])
    assert [page.source for page in result.pages] == ["invoice[U+202E]fdp.png", "two[U+000A]lines[U+2066][U+2028].png",
                                                       "Jahresbericht – Ü 2024 تقرير.png"]
    (problem,) = load_files([("bad\u202e.pdf", b"not a pdf at all")]).problems
    assert str(problem).startswith("bad[U+202E].pdf")


def test_a_file_name_that_is_not_utf8_is_shown_in_text_utf8_can_hold(tmp_path):
    """A Latin-1 "café.png" on a Linux disk reached Page.source as "caf\\udce9.png" (how Python
    decodes it), which SQLite and the console's UTF-8 then refused."""
    import os

    path = os.path.join(os.fsencode(tmp_path), b"caf\xe9.png")
    with open(path, "wb") as handle:
        handle.write(corpus.plain_png())
    result = load_files([os.fsdecode(path), path, (os.fsdecode(b"bad\xff.pdf"), b"not a pdf at all")])
    assert [page.source for page in result.pages] == ["caf[U+DCE9].png"]  # its bytes as a path: the same file
    assert result.notes == ["caf[U+DCE9].png was uploaded twice; it was read once."]
    assert [str(problem).split(":")[0] for problem in result.problems] == ["bad[U+DCFF].pdf"]
    for text in [result.pages[0].label, *result.notes, *map(str, result.problems)]:
        text.encode("utf-8")  # strict


# --- each odd input, in detail -------------------------------------------------------------------


def test_a_folder_and_a_pipe_given_as_files_are_named_and_the_rest_still_loads(tmp_path):
    """A pipe was reported as an "empty file" (a stat size of 0); read, it could block for good."""
    import os

    good = tmp_path / "page.png"
    good.write_bytes(corpus.plain_png())
    pipe = tmp_path / "feed"
    os.mkfifo(pipe)
    loaded = load_files([str(tmp_path), str(pipe), str(good)])
    assert [page.source for page in loaded.pages] == ["page.png"]
    assert [str(problem) for problem in loaded.problems] == [
        f"{tmp_path.name}: is a folder, not a file; give the files in it",
        "feed: is not a regular file (a pipe, a device or a socket); save what it holds to a file first",
    ]


def test_a_files_contents_given_without_a_name_say_how_to_give_them():
    """Raw bytes were taken for a path: the problem's name was the PDF's binary tail."""
    loaded = load_files([corpus.text_pdf("x"), ("named.pdf", corpus.text_pdf("y"))])
    assert [page.source for page in loaded.pages] == ["named.pdf"]
    assert [str(problem) for problem in loaded.problems] == [
        'upload #1: is a file\'s contents without a name: pass (name, bytes), e.g. ("report.pdf", data)']


def test_encrypted_pdf_asks_for_the_password_to_be_removed():
    with pytest.raises(DocumentError) as caught:
        load_file(("locked.pdf", corpus.encrypted_pdf()))
    (problem,) = caught.value.problems
    assert problem.source == "locked.pdf" and problem.page is None
    assert "password" in str(caught.value) and str(caught.value).startswith("locked.pdf: ")


@pytest.mark.parametrize("handler", ["Adobe.PubSec", "Adobe.APS"])
def test_a_pdf_locked_by_a_certificate_or_rights_management_says_so_not_damaged(handler):
    """Certificate (public-key) and DRM encryption were called damaged, maybe truncated, to be
    downloaded again, which cannot help."""
    loaded = load_files([("contract.pdf", corpus.certificate_pdf(handler)), ("next.png", corpus.plain_png())])
    assert [page.source for page in loaded.pages] == ["next.png"]
    assert [str(problem) for problem in loaded.problems] == [
        "contract.pdf: PDF protected by a certificate or rights management (DRM), which this app cannot open. "
        "Save an unprotected copy (for example print it to a new PDF where it opens) and upload that file"]


def test_pdf_with_only_an_owner_password_opens():
    page = only_page("restricted.pdf", corpus.owner_only_pdf())
    assert page.kind == "pdf" and page.size == (400, 240)  # 200 × 120 pt at 144 DPI


def test_truncated_pdf_is_reported_and_what_was_recovered_is_kept_less_its_blank_pages():
    """MuPDF recovers 3 pages from the cut file; 2 come out pure white (their content was in the
    missing half). Those were ranked, shown and offered for judging like pages; they are left out,
    by page number."""
    result = load_files([("cut.pdf", corpus.truncated_pdf())])
    assert [problem.source for problem in result.problems] == ["cut.pdf", "cut.pdf"]
    assert "truncated" in str(result.problems[0])
    assert "3 page(s) were recovered but may be blank or incomplete" in result.problems[0].message
    assert result.problems[1].message == ("pages 2–3 came out blank, their content lost where the file is truncated, "
                                          "so they were left out")
    assert [(page.source, page.page_number) for page in result.pages] == [("cut.pdf", 1)]
    assert [(document.name, document.page_count) for document in result.documents] == [("cut.pdf", 3)]


def test_a_blank_page_of_a_whole_pdf_is_kept():
    """Only a file cut short loses its blank pages: a complete PDF's blank page is a page."""
    import pymupdf

    doc = pymupdf.open()
    doc.new_page(width=200, height=100)
    doc.new_page(width=200, height=100).insert_text((20, 50), "two")
    result = load_files([("blank-first.pdf", doc.tobytes())])
    assert result.problems == [] and [page.page_number for page in result.pages] == [1, 2]


def test_poster_page_is_rendered_within_the_pixel_cap_with_a_note():
    result = load_files([("poster.pdf", corpus.poster_pdf())])
    (page,) = result.pages
    cap = IngestOptions().max_page_pixels
    assert page.width * page.height <= cap
    assert page.width * page.height > 0.99 * cap  # no more reduction than needed
    assert any("poster.pdf" in note and "17 DPI" in note for note in result.notes), result.notes
    # The drawing is there: red fill in the middle, white margin at the corner.
    assert page.image.getpixel((page.width // 2, page.height // 2)) == (255, 0, 0)
    assert page.image.getpixel((5, 5)) == (255, 255, 255)


def test_smaller_pixel_cap_renders_ordinary_pages_smaller():
    options = IngestOptions(max_page_pixels=10_000)
    result = load_files([("small.pdf", corpus.text_pdf("a", "b"))], options)
    assert all(page.width * page.height <= 10_000 for page in result.pages)
    assert any("pages 1–2" in note for note in result.notes), result.notes


def test_pixel_bomb_png_is_refused_from_its_header_without_decoding(monkeypatch):
    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    pil_limit = Image.MAX_IMAGE_PIXELS
    result = load_files([("bomb.png", corpus.png_claiming(100_000, 100_000))])
    (problem,) = result.problems
    assert result.pages == []
    assert "100,000×100,000 pixels" in problem.message and "80.0 megapixels" in problem.message
    assert Image.MAX_IMAGE_PIXELS == pil_limit  # Pillow's global setting is left alone


@pytest.mark.parametrize(("name", "build", "size"), [
    ("bomb.gif", corpus.gif_claiming, (65_535, 65_535)),
    ("bomb.jpg", corpus.jpeg_claiming, (60_000, 60_000)),
    ("bomb.tif", corpus.tiff_claiming, (60_000, 60_000)),
])
def test_pixel_bombs_in_other_formats_are_refused_from_their_headers_without_decoding(monkeypatch, name, build, size):
    data = build(*size)
    with pytest.raises(Image.DecompressionBombError):  # so the per-format fallback is what reads it
        Image.open(io.BytesIO(data))

    def no_decoding(self, *args, **kwargs):
        raise AssertionError("the image was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    pil_limit = Image.MAX_IMAGE_PIXELS
    result = load_files([(name, data)])
    (problem,) = result.problems
    assert result.pages == [] and result.documents == []
    width, height = size
    assert f"image too large: {width:,}×{height:,} pixels ({width * height / 1e6:,.1f} megapixels)" in problem.message
    assert "over the limit of 80.0 megapixels" in problem.message
    assert Image.MAX_IMAGE_PIXELS == pil_limit


def _exif_with_thumbnail(thumbnail: bytes) -> bytes:
    """EXIF (APP1) data holding `thumbnail` as its JPEG thumbnail (IFD1), as cameras write it."""
    exif = Image.Exif()
    exif[0x0112] = 1  # orientation: upright
    raw = exif.tobytes()  # b"Exif\0\0" + TIFF header + IFD0 (next IFD offset 0)
    tiff = bytearray(raw[6:])
    order = "<" if tiff[:2] == b"II" else ">"
    ifd1_at = len(tiff)
    struct.pack_into(order + "I", tiff, 8 + 2 + 12 * struct.unpack_from(order + "H", tiff, 8)[0], ifd1_at)  # IFD0 → IFD1
    data_at = ifd1_at + 2 + 2 * 12 + 4
    tiff += struct.pack(order + "H", 2) + struct.pack(order + "HHII", 0x0201, 4, 1, data_at)
    tiff += struct.pack(order + "HHII", 0x0202, 4, 1, len(thumbnail)) + struct.pack(order + "I", 0) + thumbnail
    return raw[:6] + bytes(tiff)


def test_a_jpeg_of_over_100_scans_is_refused_undecoded_and_the_rest_loads(monkeypatch):
    """Each scan of a progressive JPEG is a pass over the whole picture: a 1 MB file of 9,000
    scans decoded for minutes in the request's thread. Progressive photos (~10 scans) still load."""
    real_load, decoded = ImageFile.ImageFile.load, []

    def load(self, *args, **kwargs):
        decoded.append(self.size)
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    photo = corpus.progressive_jpeg(extra_scans=4)  # 10 scans
    slow = corpus.progressive_jpeg(extra_scans=95, size=(80, 60))
    loaded = load_files([("slow.jpg", slow), ("photo.jpg", photo)])
    assert [(page.source, page.image.getpixel((5, 5))) for page in loaded.pages] == [("photo.jpg", (128, 128, 128))]
    assert [str(problem) for problem in loaded.problems] == [
        "slow.jpg: JPEG stored in over 100 scans (passes over the picture); decoding it would take minutes. Save it "
        "again as a plain JPEG or as PNG and upload that"]
    assert set(decoded) == {(64, 48)}  # the photo only
    # Only the first picture's scans count: an MPO's second, and a phone's motion photo, whose video
    # after the picture holds FF DA every ~64 KiB (counted over the file, 8 MB of it refused a photo).
    mpo = corpus.encode(Image.open(io.BytesIO(photo)), "MPO", save_all=True,
                        append_images=[Image.open(io.BytesIO(photo))], progressive=True)
    assert only_page("stereo.jpg", mpo).size == (64, 48)
    video = b"ftypmp42" + b"\x12\xff\xda\x00\x0c" * 500
    assert only_page("motion.jpg", corpus.encode(Image.new("RGB", (64, 48)), "JPEG") + video).size == (64, 48)
    from reranker.image_structure import jpeg_pieces

    def _jpeg_scans(data, limit):
        return jpeg_pieces(data, limit, 10_000)[0]

    with_thumbnail = corpus.encode(Image.new("RGB", (64, 48)), "JPEG", progressive=True,
                                   exif=_exif_with_thumbnail(corpus.progressive_jpeg(extra_scans=95)))
    assert _jpeg_scans(with_thumbnail, 100) < 20  # the EXIF thumbnail's 101 scans are inside its segment
    assert _jpeg_scans(corpus.progressive_jpeg(extra_scans=9000), 100) == 101  # counted up to the limit, and no further


def test_images_of_many_tiny_pieces_are_refused_unread_and_the_rest_loads(monkeypatch):
    """Pillow reads an image's pieces (PNG chunks, GIF blocks and comment pieces, JPEG segments,
    TIFF tags) in Python, in the request's thread: a 2.4 MB PNG of 200,000 empty chunks took
    2.4 s, a 0.4 MB GIF comment of 200,000 pieces 4.3 s (quadratic), a 14 MB TIFF of 20 pages of
    60,000 tags 34 s. Files just past the limits are refused before Pillow opens them; files just
    under them load."""
    from reranker import image_structure as limits

    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda fp, *a, **k: opened.append(fp.getvalue()[:4]) or real_open(fp, *a, **k))
    blocks = limits.PIECES_ALLOWED + 1_000  # past the allowance for files of these sizes (~10,000 + 1 per KiB)
    comment = b"x" * (limits.MAX_GIF_COMMENT_PIECES + 1)
    refused = {
        "chunks.png": corpus.png_of_many_chunks(blocks),
        "blocks.gif": corpus.gif_with_extension(b"!\xff\x0bXMP DataXMP" + b"\x01x" * blocks + b"\0"),
        "comment.gif": corpus.gif_with_extension(corpus.gif_comment(comment, piece=1)),
        "comments.gif": corpus.gif_with_extension(corpus.gif_comment(b"") * len(comment)),
        "stray bytes.gif": corpus.gif_with_extension(b"\0" * blocks),  # Pillow skips each in turn
        "segments.jpg": corpus.jpeg_of_many_segments(limits.MAX_JPEG_SEGMENTS + 1),
        "tags.tif": corpus.tiff_of_many_tags(2, limits.MAX_TIFF_ENTRIES // 2),
    }
    loaded = load_files([*refused.items(), ("photo.png", corpus.plain_png())])
    assert [page.source for page in loaded.pages] == ["photo.png"]
    assert [problem.source for problem in loaded.problems] == list(refused)
    assert opened == [b"\x89PNG"]  # the photo only
    assert str(loaded.problems[0]) == (
        f"chunks.png: PNG stored in over {limits.PIECES_ALLOWED + len(refused['chunks.png']) // 1024:,} chunks, far "
        "more than image software writes; reading it would take minutes. Open it in an image editor, save it "
        "again and upload that")
    assert "comment of over 1,000 pieces" in str(loaded.problems[2]) and "comment of" in str(loaded.problems[3])
    assert "GIF stored in over 10,0" in str(loaded.problems[4])
    assert "over 1,000 segments," in str(loaded.problems[5])
    assert "over 50,000 tags" in str(loaded.problems[6])

    under = {
        "chunks.png": corpus.png_of_many_chunks(limits.PIECES_ALLOWED - 100),
        "comment.gif": corpus.gif_with_extension(corpus.gif_comment(comment[:-10], piece=1)),
        "segments.jpg": corpus.jpeg_of_many_segments(limits.MAX_JPEG_SEGMENTS - 10),
        "tags.tif": corpus.tiff_of_many_tags(3, 1_000),
        "animated.gif": corpus.animated_gif(),  # its second picture is where the walk stops
    }
    loaded = load_files(list(under.items()))
    assert not loaded.problems and [page.source for page in loaded.pages] == [*list(under)[:3], "tags.tif", "tags.tif",
                                                                              "tags.tif", "animated.gif"]
    assert all(page.image.getpixel((0, 0))[0] > 250 for page in loaded.pages[:-1])


def test_every_header_pillow_reads_is_checked_and_the_other_slow_structures_too(monkeypatch):
    """A reviewer's files past the first checks: a TIFF under a header Pillow also takes (II\\0*),
    a JPEG of segments after its first scan (the check itself walked them for seconds) or of
    stray bytes before its picture, a TIFF page of 2 million strips (15 s), a PNG or WebP whose
    EXIF, rewritten value by value as the page is turned, holds 8 million values (8 s)."""
    from reranker import image_structure as limits

    monkeypatch.setattr(limits, "MAX_JPEG_HEADER_BYTES", 48 * 1024)
    monkeypatch.setattr(limits, "MAX_TIFF_STRIPS", 1_000)
    monkeypatch.setattr(limits, "MAX_EXIF_BYTES", 1024)
    swapped = bytearray(corpus.tiff_of_many_tags(2, limits.MAX_TIFF_ENTRIES // 2))
    swapped[2:4] = b"\0*"
    jpeg = corpus.encode(Image.new("RGB", (8, 6), (255, 0, 0)), "JPEG", quality=95)
    after_app0 = 4 + int.from_bytes(jpeg[4:6], "big")
    exif = Image.Exif()
    exif[0x010E] = "x" * 2_000  # ImageDescription
    refused = {
        "swapped header.tif": bytes(swapped),
        "after the scan.jpg": jpeg[:-2] + b"\xff\xfe\x00\x02" * (limits.MAX_JPEG_SEGMENTS + 1) + jpeg[-2:],
        "stray bytes.jpg": jpeg[:after_app0] + b"\0" * 60_000 + jpeg[after_app0:],
        "strips.tif": corpus.tiff_of_many_strips(1_001),
        "exif.png": corpus.png_with_exif(exif.tobytes()),
        "exif.webp": corpus.encode(Image.new("RGB", (8, 6), (255, 0, 0)), "WEBP", exif=exif.tobytes()),
    }
    loaded = load_files(list(refused.items()))
    assert not loaded.pages and [problem.source for problem in loaded.problems] == list(refused)
    assert [str(problem).split(": ", 1)[1].split(", far more")[0] for problem in loaded.problems] == [
        "TIFF stored in over 50,000 tags (a page has a few dozen)", "JPEG stored in over 1,000 segments",
        "JPEG with over 48 KiB of metadata before its picture", "TIFF stored in over 1,000 strips or tiles",
        "PNG with EXIF data of over 1 KiB", "WebP with EXIF data of over 1 KiB"]

    monkeypatch.setattr(limits, "MAX_EXIF_BYTES", 10 * 1024)
    small = bytearray(corpus.tiff_of_many_tags(2, 10))
    small[2:4] = b"\0*"
    under = {
        "swapped header.tif": bytes(small),
        "strips.tif": corpus.tiff_of_many_strips(999),
        "exif.png": corpus.png_with_exif(exif.tobytes()),
        "exif.webp": refused["exif.webp"],
        "stray bytes.jpg": jpeg[:after_app0] + b"\0" * 40_000 + jpeg[after_app0:],
    }
    loaded = load_files(list(under.items()))
    assert not loaded.problems, loaded.problems
    assert [page.source for page in loaded.pages] == ["swapped header.tif"] * 2 + list(under)[1:]


def test_the_piece_counts_stop_at_their_limits_and_follow_the_files_structure():
    from reranker.image_structure import gif_pieces, png_chunks, tiff_entries

    assert png_chunks(corpus.png_of_many_chunks(50), 1_000) == (53, 0)  # IHDR, 50, IDAT, IEND
    assert png_chunks(corpus.png_of_many_chunks(5_000), 100) == (101, 0)
    # A GIF's comment: the extension, its sub-blocks, the empty one ending them.
    assert gif_pieces(corpus.gif_with_extension(corpus.gif_comment(b"x" * 600)), 10**6, 10**6)[1] == 1 + 3 + 1
    assert gif_pieces(corpus.gif_with_extension(corpus.gif_comment(b"x" * 5_000, piece=1)), 10**6, 100)[1] == 101
    noise = Image.frombytes("L", (200, 200), random.Random(5).randbytes(200 * 200)).convert("P")
    big_gif = corpus.encode(noise, "GIF")  # its picture in ~150 sub-blocks of 255 bytes, which cost little
    assert len(big_gif) > 30_000 and gif_pieces(big_gif, 10**6, 10**6)[0] < 5
    one_page = tiff_entries(corpus.tiff_of_many_tags(1, 10), 1, 10**6)
    assert one_page == (20, 1)  # Pillow's 10 tags and 10 more; one strip
    assert tiff_entries(corpus.tiff_of_many_tags(3, 10), 2, 10**6) == (40, 2)
    looped = bytearray(corpus.tiff_of_many_tags(1, 10))  # a directory pointing at itself: read once, as Pillow does
    first = int.from_bytes(looped[4:8], "little")
    looped[-4:] = first.to_bytes(4, "little")
    assert tiff_entries(bytes(looped), 1_000, 10**6) == tiff_entries(corpus.tiff_of_many_tags(1, 10), 1, 10**6)


def test_a_page_keeps_none_of_its_files_metadata(tmp_path):
    """A GIF's comment of over 64 KiB went with the page into its thumbnail, which Pillow's JPEG
    writer cannot hold ("broken data stream"): every ranking of it failed and Annotate could not
    draw it."""
    from reranker.thumbnails import PageImages

    gif = corpus.gif_with_extension(corpus.gif_comment(b"A" * 70_000))
    page = only_page("long comment.gif", gif)
    assert page.image.info == {}
    path = PageImages(tmp_path, lambda page_hash: None, memory_bytes=2**20).path(page.content_hash, 64, page)
    assert Image.open(path).size == (8, 6)


def test_image_over_a_custom_pixel_limit_names_its_size_and_the_limit():
    with pytest.raises(DocumentError, match=r"40×30 pixels \(1,200 pixels\), over the limit of 1,000 pixels"):
        load_file(("photo.png", corpus.plain_png(size=(40, 30))), IngestOptions(max_image_pixels=1_000))


def test_our_pixel_limit_decides_even_when_pillows_global_one_is_lower(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow alone would refuse 1,536 pixels
    page = only_page("photo.png", corpus.plain_png(size=(48, 32)))
    assert page.size == (48, 32) and page.image.getpixel((0, 0)) == (10, 120, 200)


def test_large_image_is_scaled_down_to_the_page_cap_with_a_note():
    result = load_files([("big.png", corpus.plain_png(size=(400, 300)))], IngestOptions(max_page_pixels=30_000))
    (page,) = result.pages
    assert page.width * page.height <= 30_000 and page.width / page.height == pytest.approx(4 / 3, rel=0.02)
    assert any("big.png" in note and "scaled down" in note for note in result.notes)


def test_cmyk_jpeg_becomes_rgb():
    r, g, b = only_page("cmyk.jpg", corpus.cmyk_jpeg()).image.getpixel((10, 10))
    assert r > 240 and g < 20 and b < 20


def test_transparency_is_composited_over_white():
    image = only_page("rgba.png", corpus.rgba_png()).image
    assert image.getpixel((0, 0)) == (255, 255, 255)  # fully transparent
    assert all(126 <= v <= 129 for v in image.getpixel((1, 0)))  # half-transparent black → grey
    assert image.getpixel((5, 5)) == (255, 0, 0)


def test_palette_transparency_becomes_white():
    image = only_page("palette.png", corpus.palette_png_with_transparency()).image
    assert image.getpixel((2, 2)) == (255, 255, 255)
    assert image.getpixel((15, 5)) == (0, 255, 0)


def test_exif_orientation_is_applied():
    image = only_page("rotated.jpg", corpus.exif_rotated_jpeg()).image
    assert image.size == (40, 80)  # stored 80 × 40, shown turned 90° clockwise
    top, bottom = image.getpixel((20, 10)), image.getpixel((20, 70))
    assert top[0] > 200 and top[2] < 50  # the stored left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 50


def test_an_image_whose_exif_cannot_be_read_is_kept_as_stored_with_a_note():
    """A PNG whose only fault was a malformed eXIf chunk was refused ("not a TIFF file")."""
    result = load_files([("chart.png", corpus.png_with_bad_exif())])
    assert result.problems == []
    (page,) = result.pages
    assert page.size == (60, 40) and page.image.getpixel((0, 0)) == (200, 30, 30)
    assert result.notes == ["chart.png: its EXIF data (which says which way up to show it) could not be read, so it is "
                            "shown as stored."]


def test_every_tiff_frame_is_a_page():
    pages = load_file(("scan.tif", corpus.multi_frame_tiff()))
    assert [page.image.getpixel((0, 0)) for page in pages] == corpus.FRAME_COLOURS
    assert [page.size for page in pages] == [(30, 20), (40, 20), (50, 20)]
    assert [page.label for page in pages] == ["scan.tif · p.1", "scan.tif · p.2", "scan.tif · p.3"]
    assert len({page.document_hash for page in pages}) == 1


def test_a_tiffs_pages_are_counted_only_up_to_a_bound(monkeypatch):
    """Pillow's count walks every page with a list lookup each: a 13 MB TIFF of 100,000 tiny
    pages held a request's thread for 100 s."""
    from reranker import documents

    monkeypatch.setattr(documents, "TIFF_PAGES_COUNTED", 2)
    result = load_files([("scan.tif", corpus.multi_frame_tiff())])  # 3 pages
    assert [page.label for page in result.pages] == ["scan.tif · p.1", "scan.tif · p.2"]
    assert "scan.tif: a TIFF of more than 2 pages; the pages after those were not looked at." in result.notes
    monkeypatch.setattr(documents, "TIFF_PAGES_COUNTED", 3)  # exactly as many: all, and no note
    result = load_files([("scan.tif", corpus.multi_frame_tiff())])
    assert len(result.pages) == 3 and not any("TIFF" in note for note in result.notes)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")  # Pillow, on the cut directory
def test_a_tiff_cut_short_keeps_its_whole_pages_and_names_where_it_breaks():
    """Pillow's "Missing dimensions" on the third page's directory refused the whole file."""
    data = corpus.cut_tiff()
    whole = []
    with Image.open(io.BytesIO(data)) as tiff:
        for index in (0, 1):
            tiff.seek(index)
            whole.append(tiff.convert("RGB").tobytes())
    result = load_files([("scan.tif", data), ("next.png", corpus.plain_png())])
    assert [page.label for page in result.pages] == ["scan.tif · p.1", "scan.tif · p.2", "next.png"]
    assert [page.image.tobytes() for page in result.pages[:2]] == whole
    assert [str(problem) for problem in result.problems] == [
        "scan.tif: the TIFF is cut short or damaged after page 2: only pages 1–2 could be read — upload the complete file"]
    assert [(document.name, document.page_count) for document in result.documents] == [("scan.tif", 2), ("next.png", 1)]


def test_animated_gif_gives_its_first_frame_only():
    result = load_files([("anim.gif", corpus.animated_gif())])
    (page,) = result.pages
    assert page.image.getpixel((5, 5)) == corpus.FRAME_COLOURS[0]
    assert page.label == "anim.gif"
    assert any("first frame" in note for note in result.notes)


def test_sixteen_bit_grey_is_scaled_not_clipped():
    image = only_page("grey16.png", corpus.grey16_png()).image
    assert [image.getpixel((x, 0)) for x in range(3)] == [(255, 255, 255), (128, 128, 128), (0, 0, 0)]


def test_a_sixteen_bit_colour_key_makes_its_raw_value_transparent_not_its_8_bit_twin():
    """The key was tested after scaling to 8 bits: the raw value 116 stayed black-ish, and the
    grey 116 × 257 turned white. Pillow's conversion of the unscaled image (the models' references') decides."""
    data = corpus.grey16_png_with_colour_key(116)
    image = only_page("key.png", data).image
    assert (image.getpixel((2, 5)), image.getpixel((15, 5))) == ((255, 255, 255), (116, 116, 116))
    with Image.open(io.BytesIO(data)) as raw:
        reference_alpha = raw.convert("RGBA").getchannel("A")
    assert reference_alpha.getpixel((2, 5)) == 0 and reference_alpha.getpixel((15, 5)) == 255


def test_a_float_image_from_0_to_1_is_scaled_not_black():
    """A float TIFF (0: black, 1: white) came out all black: 0.9 is 0.9 of 255 levels."""
    import numpy as np

    values = np.array([[0.9, 0.5, 0.1, 0.0, 1.0]], dtype=np.float32)
    buffer = io.BytesIO()
    Image.fromarray(values, mode="F").save(buffer, format="TIFF")
    image = only_page("float.tif", buffer.getvalue()).image
    assert [image.getpixel((x, 0))[0] for x in range(5)] == [230, 128, 26, 0, 255]


def test_the_content_decides_the_type_not_the_extension():
    png_named_pdf = only_page("scan.pdf", corpus.plain_png())
    pdf_named_jpg = only_page("report.jpg", corpus.text_pdf("hello"))
    assert png_named_pdf.kind == "image" and png_named_pdf.image.getpixel((0, 0)) == (10, 120, 200)
    assert pdf_named_jpg.kind == "pdf" and pdf_named_jpg.label == "report.jpg · p.1"


def test_pdf_header_after_leading_junk_is_still_a_pdf():
    page = only_page("mail.pdf", b"\r\n\r\n" + corpus.text_pdf("hello"))
    assert page.kind == "pdf"


def _archive_of_pdfs(kind: str) -> bytes:
    """Two PDFs stored as they are (ZIP_STORED, zip -0; tar), each header within 1024 bytes."""
    import tarfile
    import zipfile

    pdfs = {"alpha.pdf": corpus.text_pdf("Alpha contract"), "beta.pdf": corpus.text_pdf("Beta invoice")}
    out = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
            for name, data in pdfs.items():
                archive.writestr(name, data)
    else:
        with tarfile.open(fileobj=out, mode="w") as archive:
            for name, data in pdfs.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize(("name", "kind", "phrase"), [("contracts.zip", "zip", "it looks like a ZIP archive (unpack it"),
                                                      ("contracts.pdf", "tar", "it looks like a tar archive (unpack it")])
def test_an_archive_holding_pdfs_as_they_are_is_named_not_read_as_its_last_pdf(name, kind, phrase):
    """The PDF header inside was within the first 1024 bytes: MuPDF "repaired" the archive into
    its last PDF and the others were dropped without a word."""
    result = load_files([(name, _archive_of_pdfs(kind))])
    assert result.pages == [] and len(result.problems) == 1
    assert result.problems[0].source == name and phrase in result.problems[0].message


@pytest.mark.parametrize(
    ("name", "data", "phrase"),
    [
        ("notes.png", b"just some notes\n", "despite its .png extension: it looks like a text file"),
        ("random.pdf", bytes(range(256)) * 8, "not a PDF or a supported image despite its .pdf extension"),
        ("slides.pdf", corpus.zip_bytes(), "ZIP archive"),
        ("page.html", b"<!DOCTYPE html><html><body>hi</body></html>", "a web page (HTML)"),
        ("photo.heic", b"\0\0\0\x18ftypheic" + bytes(64), "HEIC/AVIF photo"),
        ("empty.pdf", b"", "empty file (0 bytes)"),
        ("blank.pdf", corpus.zero_page_pdf(), "the PDF has no pages"),
        ("cut.pdf", corpus.pdf_header_only(), "damaged PDF that cannot be opened"),
        # An image's signature, then garbage: it said "binary data of an unknown kind".
        ("scan.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "damaged PNG image: its header cannot be read"),
        ("photo.jpg", b"\xff\xd8\xff\xe0" + b"\xff" * 40, "damaged image that cannot be opened (Truncated File Read)"),
        ("pic.webp", b"RIFF\x10\x00\x00\x00WEBPVP8 " + bytes(8), "damaged image that cannot be opened"),
    ],
)
def test_unusable_files_get_a_clear_message(name, data, phrase):
    result = load_files([(name, data)])
    assert result.pages == [] and result.documents == []
    (problem,) = result.problems
    assert problem.source == name and phrase in problem.message, problem.message


def test_file_over_the_size_limit_is_refused_with_both_sizes(tmp_path):
    path = tmp_path / "big.pdf"
    path.write_bytes(corpus.text_pdf("x") + b"%" * 5_000)
    (problem,) = load_files([path], IngestOptions(max_file_bytes=2_000)).problems
    assert problem.source == "big.pdf"
    assert "file too large" in problem.message and "2,000 bytes" in problem.message
    assert f"{path.stat().st_size:,} bytes" in problem.message
    (problem,) = load_files([("big.bin", bytes(3_000_000))], IngestOptions(max_file_bytes=2_000_000)).problems
    assert "3.0 MB" in problem.message and "2.0 MB" in problem.message


def test_missing_path_is_a_problem_not_a_crash(tmp_path):
    (problem,) = load_files([tmp_path / "gone.pdf", tmp_path]).problems[:1]
    assert problem.source == "gone.pdf" and "could not be read" in problem.message


def test_a_page_that_fails_to_render_is_reported_and_the_others_kept(monkeypatch):
    """Rendered in this process (where the failure can be patched in); tests/test_rendering.py
    has the same for a page failing in a worker process."""
    from reranker import rendering

    monkeypatch.setattr(rendering, "current_process", lambda: type("Daemon", (), {"daemon": True})())
    real = pymupdf.Page.get_pixmap

    def fail_on_page_2(self, *args, **kwargs):
        if self.number == 1:
            raise RuntimeError("broken content stream")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pymupdf.Page, "get_pixmap", fail_on_page_2)
    result = load_files([("report.pdf", corpus.text_pdf("one", "two", "three"))])
    assert [page.page_number for page in result.pages] == [1, 3]
    (problem,) = result.problems
    assert problem.page == 2
    assert str(problem).startswith("report.pdf, page 2: could not be rendered (RuntimeError: broken content stream)")
    assert result.documents[0].page_count == 3


def test_truncated_image_data_is_reported():
    with pytest.raises(DocumentError, match=r"^cut\.png: could not be decoded .*truncated"):
        load_file(("cut.png", corpus.truncated_png()))


# --- the sample pages as a real multi-page PDF -----------------------------------------------------


def test_sample_pages_pdf_renders_every_page_in_order():
    pages = load_file(("samples.pdf", corpus.sample_pdf(10)), IngestOptions(dpi=72))
    assert [page.page_number for page in pages] == list(range(1, 11))
    for page, path in zip(pages, corpus.SAMPLE_PAGES):
        with Image.open(path) as original:
            # each page measures the image's pixels / 2 in points, so 72 DPI gives half its size
            expected = original.convert("RGB").resize(page.size, Image.Resampling.BOX)
        assert abs(page.width - original.width / 2) <= 1 and abs(page.height - original.height / 2) <= 1
        assert mean_difference(page.image, expected) < 8, path.name
    assert len({page.content_hash for page in pages}) == 10


# --- limits, duplicates, thumbnails --------------------------------------------------------------


def test_max_pages_counts_across_the_batch_and_reports_the_rest():
    files = [("a.pdf", corpus.text_pdf("1", "2", "3")), ("b.png", corpus.plain_png()),
             ("c.pdf", corpus.text_pdf("4", "5", "6")), ("d.png", corpus.plain_png((1, 2, 3)))]
    result = load_files(files, IngestOptions(max_pages=5))
    labels = [page.label for page in result.pages]
    assert labels == ["a.pdf · p.1", "a.pdf · p.2", "a.pdf · p.3", "b.png", "c.pdf · p.1"]
    assert result.problems == []
    (note,) = [note for note in result.notes if "Only the first" in note]
    assert "Only the first 5 pages" in note and "c.pdf pages 2–3" in note and "d.png" in note
    assert [document.name for document in result.documents] == ["a.pdf", "b.png", "c.pdf"]
    assert result.documents[2].page_count == 3  # the file's own count, not what was loaded


def test_the_note_on_files_past_the_page_limit_names_ten_and_counts_the_rest():
    """An upload of 3,000 files named the 2,800 past the limit in one note."""
    files = [(f"p{number}.png", corpus.plain_png((number, 0, 0))) for number in range(25)]
    result = load_files(files, IngestOptions(max_pages=3))
    (note,) = [note for note in result.notes if "Only the first" in note]
    assert note.endswith("skipped: p3.png, p4.png, p5.png, p6.png, p7.png, p8.png, p9.png, p10.png, p11.png, p12.png, "
                         "and 12 more files.")


def test_a_bad_file_after_the_page_limit_is_still_reported():
    result = load_files([("a.pdf", corpus.text_pdf("1")), ("x.pdf", b"")], IngestOptions(max_pages=1))
    assert len(result.pages) == 1 and [problem.source for problem in result.problems] == ["x.pdf"]


def test_identical_pages_share_a_content_hash_and_are_flagged():
    png = corpus.plain_png()
    bmp = corpus.encode(Image.open(io.BytesIO(png)), "BMP")  # same pixels, other format
    other = corpus.plain_png((0, 0, 0))
    result = load_files([("a.png", png), ("again.png", png), ("a.bmp", bmp), ("other.png", other)])
    hashes = [page.content_hash for page in result.pages]
    assert hashes[0] == hashes[1] == hashes[2] != hashes[3]
    pairs = [(page.source, first.source) for page, first in result.duplicates()]
    assert pairs == [("again.png", "a.png"), ("a.bmp", "a.png")]
    assert any("2 page(s) identical" in note for note in result.notes)
    assert len(result.pages) == 4  # all kept; callers decide


def test_pages_compare_by_identity_fields_not_pixels():
    a = only_page("a.png", corpus.plain_png())
    b = only_page("a.png", corpus.plain_png())
    assert a == b and hash(a) == hash(b) and a.image is not b.image


# --- API odds and ends ---------------------------------------------------------------------------


def test_problem_reads_as_a_sentence_with_file_and_page():
    assert str(Problem("report.pdf", "could not be rendered (x)", 3)) == "report.pdf, page 3: could not be rendered (x)"
    assert str(Problem("a.png", "empty file")) == "a.png: empty file"


def test_load_files_accepts_paths_and_a_single_path(corpus_paths):
    result = load_files(str(corpus_paths["good.png"]))
    assert [page.source for page in result.pages] == ["good.png"]


@pytest.mark.parametrize("field", ["dpi", "max_file_bytes", "max_pages", "max_page_pixels", "max_image_pixels"])
def test_options_must_be_positive(field):
    with pytest.raises(ValueError, match=field):
        IngestOptions(**{field: 0})


def test_render_speed_renders_every_page():
    speed = render_speed(corpus.text_pdf("1", "2", "3", "4"), dpi=72)
    assert speed.pages == 4 and speed.dpi == 72
    assert speed.seconds > 0 and speed.pages_per_second > 0
    with pytest.raises(DocumentError):
        render_speed(corpus.encrypted_pdf())


def test_a_strip_too_narrow_to_score_is_a_problem_not_a_page():
    """Qwen-VL refuses aspect ratios over 200:1; such a page is reported, the others stay."""
    strip, normal = io.BytesIO(), io.BytesIO()
    Image.new("RGB", (4020, 20), "white").save(strip, format="PNG")
    Image.new("RGB", (400, 300), "white").save(normal, format="PNG")
    result = load_files([("strip.png", strip.getvalue()), ("page.png", normal.getvalue())])
    assert [page.source for page in result.pages] == ["page.png"]
    assert len(result.problems) == 1 and result.problems[0].source == "strip.png"
    assert "too narrow" in str(result.problems[0]) and "4020×20" in str(result.problems[0])


def test_two_different_files_of_one_name_are_told_apart(tmp_path):
    """2024/scan.png and 2025/scan.png had the same label everywhere (galleries, exports)."""
    for year, colour in (("2024", (0, 0, 0)), ("2025", (255, 255, 255))):
        (tmp_path / year).mkdir()
        Image.new("RGB", (40, 30), colour).save(tmp_path / year / "scan.png")
    result = load_files([str(tmp_path / "2024" / "scan.png"), str(tmp_path / "2025" / "scan.png"),
                         ("scan (2).png", corpus.plain_png()), ("scan", corpus.plain_png((1, 2, 3))),
                         ("scan", corpus.plain_png((4, 5, 6)))])
    # A file named "scan (2).png" itself, after that: it is told apart in turn.
    assert [page.source for page in result.pages] == ["scan.png", "scan (2).png", "scan (2) (2).png", "scan", "scan (2)"]
    assert "Two different files are named scan.png: the later one is shown as scan (2).png." in result.notes


def test_a_strip_of_exactly_200_to_1_stays_within_it_when_scaled_down():
    """60000×300 (18 MP, scaled to fit 12 MP) became 48989×244, 200.8:1, and was refused."""
    strip = io.BytesIO()
    Image.new("RGB", (60000, 300), "white").save(strip, format="PNG")
    (page,) = load_files([("strip.png", strip.getvalue())]).pages
    assert max(page.size) <= 200 * min(page.size) and page.width * page.height <= IngestOptions().max_page_pixels


# ----- the ingest cache: a new question about the same upload does not render it again ---------
def summary(result: Ingested) -> tuple:
    return (
        [(p.content_hash, p.source, p.page_number, p.document_hash, p.kind, p.page_count) for p in result.pages],
        result.problems, result.documents, result.notes,
    )


def test_a_cached_batch_equals_a_fresh_one_and_renders_nothing(corpus_paths, monkeypatch):
    from reranker import documents
    from reranker.documents import ingest_cache

    cache = ingest_cache()
    first = load_files(corpus_paths.values(), cache=cache)
    assert summary(first) == summary(load_files(corpus_paths.values()))
    loaded_again = []
    real = documents._ingest
    monkeypatch.setattr(documents, "_ingest", lambda name, *args: loaded_again.append(name) or real(name, *args))
    again = load_files(corpus_paths.values(), cache=cache)
    assert summary(again) == summary(first)  # pages, per-page problems, notes and duplicates alike
    # Only refused files (cheap to refuse again, never cached) went through loading again.
    assert loaded_again and not {page.source for page in first.pages} & set(loaded_again)
    assert all(a.image is b.image for a, b in zip(again.pages, first.pages))


def test_the_same_file_uploaded_twice_is_read_once_and_said_so():
    pdf = corpus.text_pdf("one", "two")
    result = load_files([("a.pdf", pdf), ("a.pdf", pdf), ("b.pdf", pdf)])
    # Under another name it is another document (its identical pages are noted, and scored once).
    assert [(page.source, page.page_number) for page in result.pages] == [("a.pdf", 1), ("a.pdf", 2), ("b.pdf", 1), ("b.pdf", 2)]
    assert "a.pdf was uploaded twice; it was read once." in result.notes
    assert not any("a.pdf · p.1 = a.pdf · p.1" in note for note in result.notes)


def test_a_renamed_file_given_again_under_either_name_is_read_once():
    """b/x.png, shown as "x (2).png", given again as "x (2).png" was read again: two pages of one
    label and the same pixels."""
    red, blue = corpus.plain_png((255, 0, 0)), corpus.plain_png((0, 0, 255))
    result = load_files([("a/x.png", red), ("b/x.png", blue), ("x (2).png", blue), ("c/x.png", blue)])
    assert [(page.label, page.image.getpixel((0, 0))) for page in result.pages] == [
        ("x.png", (255, 0, 0)), ("x (2).png", (0, 0, 255))]
    assert result.notes == ["Two different files are named x.png: the later one is shown as x (2).png.",
                            "x (2).png was uploaded twice; it was read once.",
                            "x (2).png was uploaded twice; it was read once."]


def test_the_cache_is_keyed_by_bytes_name_and_options(monkeypatch):
    from reranker import documents
    from reranker.documents import ingest_cache

    calls = []
    real = documents._ingest
    monkeypatch.setattr(documents, "_ingest", lambda name, *args: calls.append(name) or real(name, *args))
    cache = ingest_cache()
    pdf = corpus.text_pdf("one", "two")
    load_files([("a.pdf", pdf)], cache=cache)
    load_files([("a.pdf", pdf)], cache=cache)
    assert calls == ["a.pdf"]
    renamed = load_files([("b.pdf", pdf)], cache=cache)
    assert calls == ["a.pdf", "b.pdf"] and {page.source for page in renamed.pages} == {"b.pdf"}
    load_files([("a.pdf", pdf)], IngestOptions(dpi=72), cache=cache)
    load_files([("a.pdf", corpus.text_pdf("one", "three"))], cache=cache)
    load_files([("a.pdf", pdf)], IngestOptions(max_pages=1), cache=cache)
    assert calls == ["a.pdf", "b.pdf", "a.pdf", "a.pdf", "a.pdf"]


def test_the_cache_keeps_at_most_its_bytes_of_pages():
    from reranker.documents import ingest_cache

    pdf = corpus.text_pdf("one", "two")
    load_files([("x.pdf", pdf)], cache=(one := ingest_cache()))
    one_file = one.size  # its pages' pixels and the objects around them
    assert one_file > sum(p.width * p.height * 3 for p in load_files([("x.pdf", pdf)]).pages)
    cache = ingest_cache(max_bytes=2 * one_file)
    for name in ("a.pdf", "b.pdf", "c.pdf"):
        load_files([(name, pdf)], cache=cache)
    assert len(cache) == 2 and cache.size <= cache.capacity


def test_the_cache_is_charged_at_least_what_its_entries_hold_however_small_their_pages():
    """A file with no usable page (an image that does not decode, a strip too narrow) was charged
    1 byte, a 4×4 page 48: the 1 GiB bound of the app's cache held ~1e9 entries of ~1.5 KB."""
    import tracemalloc

    from reranker.documents import ingest_cache

    for data in (corpus.truncated_png(), corpus.plain_png(size=(4, 4))):
        cache = ingest_cache()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for number in range(300):  # a file under another name is another entry
                load_files([(f"upload-{number}.png", data)], cache=cache)
            held = tracemalloc.get_traced_memory()[0] - before  # (Pillow's pixels are not traced: charged as such)
        finally:
            tracemalloc.stop()
        assert len(cache) == 300
        assert cache.size >= held, f"{cache.size:,} B charged for {held:,} B held"


def test_refused_files_are_not_cached_and_stay_refused():
    from reranker.documents import ingest_cache

    cache = ingest_cache()
    for _ in range(2):
        result = load_files([("locked.pdf", corpus.encrypted_pdf())], cache=cache)
        assert "password" in str(result.problems[0]) and not result.pages
    assert len(cache) == 0


def test_a_page_pickles_with_its_pixels():
    """ZeroGPU sends pages to its worker pickled."""
    import pickle

    page = load_files([str(corpus.SAMPLE_PAGES[0])]).pages[0]
    copy = pickle.loads(pickle.dumps(page))
    assert copy == page and copy.image.tobytes() == page.image.tobytes() and copy.image.mode == "RGB"


def test_an_entry_that_is_no_file_is_a_problem_and_the_others_load():
    loaded = load_files([None, str(corpus.SAMPLE_PAGES[0]), 42])
    assert len(loaded.pages) == 1
    assert [(p.source, p.message) for p in loaded.problems] == [
        ("upload #1", "is not a file path or a (name, bytes) pair: NoneType"),
        ("upload #3", "is not a file path or a (name, bytes) pair: int"),
    ]


@pytest.mark.parametrize("render_workers", [1, 2])
def test_an_uploads_pages_may_hold_only_so_many_pixels_in_all(render_workers):
    """A tiny PDF can hold hundreds of poster-size pages: past the upload's pixel limit the rest
    of it, and any later file, is skipped and listed, in-process and in worker processes alike."""
    options = IngestOptions(max_total_pixels=1_000_000, render_workers=render_workers)
    big = corpus.text_pdf(*[f"page {n}" for n in range(1, 16)])  # 400×240 px a page at 144 DPI
    loaded = load_files([("big.pdf", big), ("later.pdf", corpus.text_pdf("later"))], options)
    assert [p.page_number for p in loaded.pages] == list(range(1, 11))  # 10 × 96,000 px fit, the 11th not
    assert sum(p.width * p.height for p in loaded.pages) <= 1_000_000 and not loaded.problems
    (note,) = [n for n in loaded.notes if n.startswith("Not every page was loaded")]
    assert "may hold 1.0 megapixels in all" in note and note.endswith("Skipped: big.pdf pages 11–15, later.pdf.")
