"""A corpus of bad and odd uploads, built on the fly with PyMuPDF, Pillow and raw bytes.

Every builder returns a file's bytes. `CORPUS` names each file (extensions deliberately
misleading where the name says so) and what ingestion must make of it, so any test — documents,
CLI, UI — can write the corpus into a folder with `write_corpus(folder)` and check the outcome.
"""

from __future__ import annotations

import io
import random
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import pymupdf
from PIL import Image

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "examples" / "sample-pages"
SAMPLE_PAGES = sorted(SAMPLE_DIR.glob("doc_*.jpg"), key=lambda p: int(p.stem.split("_")[1]))


# --- PDFs --------------------------------------------------------------------------------------


def text_pdf(*texts: str, size: tuple[float, float] = (200, 120)) -> bytes:
    """One small page per text."""
    doc = pymupdf.open()
    for text in texts:
        page = doc.new_page(width=size[0], height=size[1])
        page.insert_text((20, 60), text, fontsize=18)
    return doc.tobytes()


def sample_pdf(count: int = 10, points_per_pixel: float = 0.5, letter: bool = False) -> bytes:
    """The sample page images as a PDF, one per page, in order.

    Each page measures the image's pixels × points_per_pixel, so at 72 / points_per_pixel DPI
    (144 by default) a page renders back at the image's own size. letter=True puts each image
    on a US-letter page instead, the way a scanned report would look.
    """
    doc = pymupdf.open()
    for path in (SAMPLE_PAGES * (count // len(SAMPLE_PAGES) + 1))[:count]:
        with Image.open(path) as image:
            width, height = image.size
        if not letter:
            page = doc.new_page(width=width * points_per_pixel, height=height * points_per_pixel)
        else:
            page = doc.new_page(width=612, height=792)
        page.insert_image(page.rect, filename=str(path))
    return doc.tobytes()


def render_bombs_pdf(pages: int, depth: int = 8) -> bytes:
    """`pages` pages, each the page of `render_bomb_pdf` (sharing its forms): a few KB."""
    doc = pymupdf.open(stream=render_bomb_pdf(depth), filetype="pdf")
    for _ in range(pages - 1):
        doc.fullcopy_page(0)
    return doc.tobytes()


def render_bomb_pdf(depth: int = 8, fanout: int = 10) -> bytes:
    """A ~2.5 KB one-page PDF that takes MuPDF fanout**depth draws to render (~30 s at depth 8 on
    one core): each form XObject draws the next one `fanout` times. Legal PDF, made to stall."""
    doc = pymupdf.open()
    page = doc.new_page(width=612, height=792)
    forms = [doc.get_new_xref() for _ in range(depth)]
    for level, xref in enumerate(forms):
        if level == depth - 1:
            body, resources = b"0 0 1 1 re f", ""
        else:
            body = b" ".join([b"q /X Do Q"] * fanout)
            resources = f"/Resources << /XObject << /X {forms[level + 1]} 0 R >> >>"
        doc.update_object(xref, f"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] {resources} >>")
        doc.update_stream(xref, body, compress=False)
    page_resources = f"<< /XObject << /X {forms[0]} 0 R >> >>"
    doc.xref_set_key(page.xref, "Resources", page_resources)
    content = doc.get_new_xref()
    doc.update_object(content, "<< >>")
    doc.update_stream(content, b"/X Do", compress=False)
    doc.xref_set_key(page.xref, "Contents", f"{content} 0 R")
    return doc.tobytes()


def encrypted_pdf(user_password: str = "secret") -> bytes:
    doc = pymupdf.open(stream=text_pdf("top secret"), filetype="pdf")
    out = io.BytesIO()
    doc.save(out, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw=user_password, owner_pw="owner-" + user_password)
    return out.getvalue()


def owner_only_pdf() -> bytes:
    """Encrypted with an owner password only: opens with the empty user password."""
    doc = pymupdf.open(stream=text_pdf("no printing"), filetype="pdf")
    out = io.BytesIO()
    doc.save(out, encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", permissions=0)
    return out.getvalue()


def poster_pdf() -> bytes:
    """One 200 × 200 inch page (14,400 pt, the largest PDF allows): 829 MP at 144 DPI."""
    doc = pymupdf.open()
    page = doc.new_page(width=14400, height=14400)
    page.draw_rect(pymupdf.Rect(1000, 1000, 13400, 13400), color=(0, 0, 1), fill=(1, 0, 0))
    return doc.tobytes()


def zero_page_pdf() -> bytes:
    """A well-formed PDF whose page tree is empty (PyMuPDF refuses to save one, so by hand)."""
    return _raw_pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])


def overcounted_pdf(pages: int, count: int) -> bytes:
    """`pages` pages ("page 1", …) whose page tree's /Count claims `count`: a file that lost
    pages, or a hand-edited one. Over its number of objects, MuPDF cannot count the pages at all."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for number in range(1, pages + 1):
        kids.append(b"%d 0 R" % (len(objects) + 1))
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 120] /Resources << /Font << /F1 3 0 R >> >> "
                       b"/Contents %d 0 R >>" % (len(objects) + 2))
        content = b"BT /F1 18 Tf 20 60 Td (page %d) Tj ET" % number
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    objects[1] = b"<< /Type /Pages /Kids [%s] /Count %d >>" % (b" ".join(kids), count)
    return _raw_pdf(objects)


def certificate_pdf(handler: str = "Adobe.PubSec") -> bytes:
    """`encrypted_pdf` with another security handler than the password one: Adobe.PubSec
    (certificates), Adobe.APS (LiveCycle rights management). MuPDF opens neither."""
    data = encrypted_pdf()
    assert data.count(b"/Filter/Standard") == 1
    return data.replace(b"/Filter/Standard", b"/Filter/" + handler.encode())  # MuPDF repairs the shifted offsets


def _raw_pdf(objects: list[bytes]) -> bytes:
    """A PDF of these objects (numbered from 1; the first is the catalog), written by hand."""
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def truncated_pdf() -> bytes:
    data = sample_pdf(3, points_per_pixel=0.1)
    return data[: len(data) // 2]


def pdf_header_only() -> bytes:
    return text_pdf("gone")[:20]


# --- images ------------------------------------------------------------------------------------


def encode(image: Image.Image, format: str, **save_options) -> bytes:
    out = io.BytesIO()
    image.save(out, format, **save_options)
    return out.getvalue()


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height RGB pixels, with a few bytes of real data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _png_chunk(b"IEND", b""))


def gif_claiming(width: int, height: int) -> bytes:
    """A 4 × 4 GIF whose screen and image descriptor both claim width × height (at most 65535)."""
    data = bytearray(encode(Image.new("P", (4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)  # logical screen
    descriptor = data.index(b"\x2c\x00\x00\x00\x00", 13)  # image separator at left 0, top 0
    data[descriptor + 5:descriptor + 9] = struct.pack("<HH", width, height)
    return bytes(data)


def jpeg_claiming(width: int, height: int) -> bytes:
    """An 8 × 8 baseline JPEG whose frame header (SOF0) claims width × height (at most 65535)."""
    data = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
    frame = data.index(b"\xff\xc0")  # marker, length (2), precision (1), then height and width
    data[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def tiff_claiming(width: int, height: int) -> bytes:
    """An 8 × 8 uncompressed TIFF whose ImageWidth and ImageLength tags claim width × height."""
    data = bytearray(encode(Image.new("RGB", (8, 8)), "TIFF"))
    assert data[:4] == b"II*\0"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, ifd)
    for entry in range(ifd + 2, ifd + 2 + 12 * entries, 12):
        tag, kind = struct.unpack_from("<HH", data, entry)
        if tag in (256, 257):  # ImageWidth, ImageLength: rewritten as one LONG each
            struct.pack_into("<HHII", data, entry, tag, 4, 1, width if tag == 256 else height)
    return bytes(data)


def progressive_jpeg(extra_scans: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    """A progressive grey JPEG (Pillow writes 6 scans), with its smallest AC scan repeated
    `extra_scans` more times before the end: libjpeg decodes each again, a pass over the whole
    picture each time (a 1 MB file of 9,000 scans of 8000 × 8000 px decoded for minutes)."""
    data = encode(Image.new("L", size, 128), "JPEG", progressive=True, quality=90)
    segments, at = [], 2  # after SOI: (marker, the segment's bytes, its scan data included)
    while data[at + 1] != 0xD9:  # EOI
        marker, (length,) = data[at + 1], struct.unpack_from(">H", data, at + 2)
        end = at + 2 + length
        if marker == 0xDA:  # a scan's entropy-coded data runs to the next marker that is not FF00 or RSTn
            while not (data[end] == 0xFF and data[end + 1] not in range(0xD0, 0xD8) and data[end + 1] != 0):
                end += 1
        segments.append((marker, data[at:end]))
        at = end
    # An AC scan: its spectral selection starts after the DC coefficient (Ss > 0).
    ac_scans = [segment for marker, segment in segments if marker == 0xDA and segment[5 + 2 * segment[4]] > 0]
    return data[:at] + min(ac_scans, key=len) * extra_scans + data[at:]


def cmyk_jpeg() -> bytes:
    return encode(Image.new("CMYK", (64, 48), (0, 255, 255, 0)), "JPEG", quality=95)  # pure red ink


def rgba_png() -> bytes:
    """Opaque red, except pixel (0, 0) fully transparent and (1, 0) half-transparent black."""
    image = Image.new("RGBA", (32, 16), (255, 0, 0, 255))
    image.putpixel((0, 0), (0, 0, 0, 0))
    image.putpixel((1, 0), (0, 0, 0, 128))
    return encode(image, "PNG")


def exif_rotated_jpeg() -> bytes:
    """80 × 40 stored, left half red and right half blue, EXIF orientation 6 (turn 90° clockwise)."""
    image = Image.new("RGB", (80, 40), (255, 0, 0))
    image.paste((0, 0, 255), (40, 0, 80, 40))
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", exif=exif.tobytes(), quality=95)


def png_with_bad_exif() -> bytes:
    """60 × 40 red, with an eXIf chunk that is not EXIF: the pixels decode (browsers show it),
    Pillow's EXIF parser refuses the chunk."""
    return encode(Image.new("RGB", (60, 40), (200, 30, 30)), "PNG", exif=b"\0\0\0\0garbage")


FRAME_COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]


def multi_frame_tiff() -> bytes:
    frames = [Image.new("RGB", (30 + 10 * i, 20), colour) for i, colour in enumerate(FRAME_COLOURS)]
    return encode(frames[0], "TIFF", save_all=True, append_images=frames[1:])


def cut_tiff() -> bytes:
    """Three 60 × 40 pages of noise, each page's data then its directory, as libtiff writes
    them, cut short inside the third: pages 1 and 2 are whole."""
    noise = random.Random(3)
    frames = [Image.frombytes("RGB", (60, 40), noise.randbytes(60 * 40 * 3)) for _ in FRAME_COLOURS]
    data = encode(frames[0], "TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    return data[: len(data) * 8 // 10]


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (24, 24), colour) for colour in FRAME_COLOURS]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)


def grey16_png() -> bytes:
    """16-bit grey: 65535 (white), 32896 (= 128 × 257, mid grey) and 0 (black) in the first row."""
    image = Image.new("I;16", (3, 2), 0)
    image.putpixel((0, 0), 65535)
    image.putpixel((1, 0), 32896)
    return encode(image, "PNG")


def grey16_png_with_colour_key(key: int = 116) -> bytes:
    """16-bit grey with a tRNS colour key: left half the raw value `key` (transparent), right
    half key × 257 (opaque, the grey that `key` is on 8 bits)."""
    image = Image.new("I;16", (20, 10), key)
    image.paste(key * 257, (10, 0, 20, 10))
    return encode(image, "PNG", transparency=key)


def palette_png_with_transparency() -> bytes:
    """Palette image: index 0 (transparent) in the left half, index 1 (green) in the right."""
    image = Image.new("P", (20, 10), 0)
    image.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    image.paste(1, (10, 0, 20, 10))
    return encode(image, "PNG", transparency=0)


def truncated_png() -> bytes:
    noise = Image.frombytes("RGB", (64, 64), random.Random(7).randbytes(64 * 64 * 3))
    data = encode(noise, "PNG")
    return data[: len(data) // 2]


def plain_png(colour=(10, 120, 200), size=(48, 32)) -> bytes:
    return encode(Image.new("RGB", size, colour), "PNG")


# Files of many tiny pieces, which Pillow reads in Python one at a time (a 100 MB file of them
# read for minutes): each a small valid picture, red, of the size given.


def png_of_many_chunks(chunks: int, size=(8, 6)) -> bytes:
    """A PNG with `chunks` empty private chunks between its header and its pixels."""
    data = plain_png((255, 0, 0), size)
    header_end = 8 + 25  # signature, IHDR
    return data[:header_end] + _png_chunk(b"prVt", b"") * chunks + data[header_end:]


def _gif_head_end(data: bytes) -> int:
    return 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)  # header, screen, global colours


def gif_with_extension(extension: bytes, size=(8, 6)) -> bytes:
    """A one-frame GIF with `extension` (whole blocks) before its picture."""
    data = encode(Image.new("RGB", size, (255, 0, 0)), "GIF")
    at = _gif_head_end(data)
    return data[:at] + extension + data[at:]


def gif_comment(text: bytes, piece: int = 255) -> bytes:
    """A GIF comment extension holding `text` in sub-blocks of `piece` bytes."""
    return b"!\xfe" + b"".join(bytes([len(text[i:i + piece])]) + text[i:i + piece]
                               for i in range(0, len(text), piece)) + b"\0"


def jpeg_of_many_segments(segments: int, size=(8, 6)) -> bytes:
    """A JPEG with `segments` empty comment segments before its picture."""
    data = encode(Image.new("RGB", size, (255, 0, 0)), "JPEG", quality=95)
    return data[:2] + b"\xff\xfe\x00\x02" * segments + data[2:]


def tiff_of_many_strips(strips: int) -> bytes:
    """An 8 × 6 red uncompressed TIFF whose StripOffsets and StripByteCounts list `strips` strips
    (each the first row again): Pillow makes a tile of each and decodes it."""
    row = bytes([255, 0, 0]) * 8
    offsets_at = 8 + len(row)
    counts_at = offsets_at + 4 * strips
    bits_at = counts_at + 4 * strips
    ifd_at = bits_at + 6
    entries = [(256, 3, 1, 8), (257, 3, 1, 6), (258, 3, 3, bits_at), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, strips, offsets_at), (277, 3, 1, 3), (278, 3, 1, 1), (279, 4, strips, counts_at)]
    out = b"II*\0" + struct.pack("<I", ifd_at) + row + struct.pack("<I", 8) * strips + struct.pack("<I", 24) * strips
    out += struct.pack("<HHH", 8, 8, 8) + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        out += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3 and count == 1
                                                         else struct.pack("<I", value))
    return out + struct.pack("<I", 0)


def png_with_exif(exif: bytes) -> bytes:
    """An 8 × 6 red PNG with `exif` as its eXIf chunk."""
    data = plain_png((255, 0, 0), (8, 6))
    return data[:33] + _png_chunk(b"eXIf", exif) + data[33:]


def tiff_of_many_tags(pages: int, tags_per_page: int) -> bytes:
    """A TIFF of `pages` 8 × 6 red pages, each directory with `tags_per_page` extra private tags."""
    data = bytearray(encode(Image.new("RGB", (8, 6), (255, 0, 0)), "TIFF"))
    assert data[:4] == b"II*\0"
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    entries = [data[at:at + 12] for at in range(ifd + 2, ifd + 2 + 12 * count, 12)]
    entries += [struct.pack("<HHIHH", 65000, 3, 1, 0, 0)] * tags_per_page  # a private SHORT tag, repeated
    out = bytearray(data)  # the pixels and the values the entries point to; new directories follow
    for page in range(pages):
        at = len(out)
        next_at = at + 2 + 12 * len(entries) + 4 if page < pages - 1 else 0
        out += struct.pack("<H", len(entries)) + b"".join(entries) + struct.pack("<I", next_at)
        if page == 0:
            struct.pack_into("<I", out, 4, at)
    return bytes(out)


def zip_bytes() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("word/document.xml", "<w:document/>")
    return out.getvalue()


# --- the corpus --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    pages: int | None  # pages ingestion must return (None: whatever could be recovered)
    problem: str | None = None  # a phrase the file's problem must contain; None: no problem
    kind: str | None = None  # "pdf" or "image" for files that load


CORPUS: dict[str, tuple[callable, Expect]] = {
    "good.pdf": (lambda: text_pdf("one", "two"), Expect(2, kind="pdf")),
    "good.png": (plain_png, Expect(1, kind="image")),
    "truncated.pdf": (truncated_pdf, Expect(1, "truncated")),  # 3 pages recovered, 2 of them blank (left out)
    "header-only.pdf": (pdf_header_only, Expect(0, "damaged PDF")),
    "random.pdf": (lambda: random.Random(1234).randbytes(4096), Expect(0, "not a PDF or a supported image")),
    "encrypted.pdf": (encrypted_pdf, Expect(0, "password-protected")),
    "owner-only.pdf": (owner_only_pdf, Expect(1, kind="pdf")),
    "poster.pdf": (poster_pdf, Expect(1, kind="pdf")),
    "empty-tree.pdf": (zero_page_pdf, Expect(0, "no pages")),
    "bomb.png": (lambda: png_claiming(100_000, 100_000), Expect(0, "100,000×100,000 pixels")),
    # Past twice Pillow's own limit, Image.open refuses these before returning a header: each
    # format's own parser is then tried in turn (documents._open_image), so the size still shows.
    "bomb.gif": (lambda: gif_claiming(65_535, 65_535), Expect(0, "65,535×65,535 pixels")),
    "bomb.jpg": (lambda: jpeg_claiming(60_000, 60_000), Expect(0, "60,000×60,000 pixels")),
    "bomb.tif": (lambda: tiff_claiming(60_000, 60_000), Expect(0, "60,000×60,000 pixels")),
    "cmyk.jpg": (cmyk_jpeg, Expect(1, kind="image")),
    "rgba.png": (rgba_png, Expect(1, kind="image")),
    "rotated.jpg": (exif_rotated_jpeg, Expect(1, kind="image")),
    "scan.tif": (multi_frame_tiff, Expect(3, kind="image")),
    "animated.gif": (animated_gif, Expect(1, kind="image")),
    "empty.pdf": (lambda: b"", Expect(0, "empty file")),
    "png-in-disguise.pdf": (plain_png, Expect(1, kind="image")),
    "pdf-in-disguise.jpg": (lambda: text_pdf("surprise"), Expect(1, kind="pdf")),
    "grey16.png": (grey16_png, Expect(1, kind="image")),
    "palette.png": (palette_png_with_transparency, Expect(1, kind="image")),
    "notes.png": (lambda: b"Meeting notes\nnothing to see here\n", Expect(0, "looks like a text file")),
    "slides.pdf": (zip_bytes, Expect(0, "ZIP archive")),
    "cut.png": (truncated_png, Expect(0, "could not be decoded")),
}


def write_corpus(folder: Path) -> dict[str, Path]:
    """Write every corpus file into `folder`; returns name → path, in CORPUS order."""
    paths = {}
    for name, (build, _) in CORPUS.items():
        paths[name] = folder / name
        paths[name].write_bytes(build())
    return paths
