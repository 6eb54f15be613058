"""Image files built to make Pillow slow, refused from their bytes before Pillow reads them.

Pillow reads an image's structure (a JPEG's segments, a PNG's chunks, a GIF's blocks, a TIFF's
directory entries and strips) in Python, one piece at a time, a GIF's comment pieces at
quadratic cost, and turning a page the way its EXIF says rewrites the EXIF value by value;
images are read in the request's thread, with no time limit (unlike PDF pages, which workers
render under one). A small file of many tiny pieces is a small picture that takes minutes to
read. Measured on a 2-core machine, through `load_files`: a 2.4 MB PNG of 200,000 empty chunks
2.4 s (a 100 MB one: ~100 s); a 0.4 MB GIF comment of 200,000 one-byte pieces 4.3 s
(quadratic); a 14 MB TIFF of 20 pages of 60,000 tags each 34 s; a 16 MB TIFF page of 2 million
strips 15 s; a 16 MB PNG whose EXIF holds 8 million values 8 s; a 1.6 MB JPEG of 400,000 empty
comments 3 s, a 95 MB one of stray bytes before its picture 5.6 s. So each check counts the
pieces Pillow would parse in Python, stopping past its limit, and a file over it is refused
with a reason a person can act on.

The limits sit far above what cameras, scanners and image libraries write (libpng writes a
chunk per 8 KiB of pixels, a GIF encoder 255-byte pieces, a TIFF page has a few dozen tags and
one to a few hundred strips) and where Pillow's reading stays around a second or two at most.
Decoding itself (in C) is not counted here, except a JPEG's scans: libjpeg decodes each again
over the whole picture.
"""

from __future__ import annotations

import re

from PIL.TiffImagePlugin import PREFIXES as _TIFF_PREFIXES  # the headers Pillow opens as TIFF

MAX_JPEG_SCANS = 100  # a photo has about 10; libjpeg-turbo's djpeg has -maxscans for the same files
MAX_JPEG_SEGMENTS = 1_000  # a progressive photo has a few dozen; an ICC profile takes at most 255
MAX_JPEG_HEADER_BYTES = 16 * 2**20  # before the first scan, which Pillow parses, stray bytes included
MAX_EXIF_BYTES = 2**20  # a PNG's or WebP's EXIF (a JPEG's fits in 64 KiB): turning the page rewrites it
MAX_GIF_COMMENT_PIECES = 1_000  # Pillow joins them with bytes +=: quadratic
MAX_TIFF_ENTRIES = 50_000  # over the pages Pillow walks; a 1,000-page fax has ~15,000
MAX_TIFF_STRIPS = 200_000  # strips or tiles, each decoded on its own (~9 µs); a page has one to a few hundred
PIECES_PER_BYTE_ALLOWED = 1 / 1024  # PNG chunks, GIF pieces: plus a fixed allowance below
PIECES_ALLOWED = 10_000

# A JPEG marker: FF and a code that is not a stuffed zero, a restart marker or fill (entropy-coded
# data holds FF only as those).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_STRIP_TAGS = (273, 324)  # StripOffsets, TileOffsets: Pillow makes a tile of each value


def too_slow_to_read(data: bytes, tiff_pages: int = 1001) -> str | None:
    """Why the image in `data` would take Pillow too long to read, or None. `tiff_pages`: how
    many of a TIFF's pages are read (the first ones)."""
    if data.startswith(b"\xff\xd8\xff"):
        scans, segments, header_bytes = jpeg_pieces(data, MAX_JPEG_SCANS, MAX_JPEG_SEGMENTS)
        if scans > MAX_JPEG_SCANS:
            return (f"JPEG stored in over {MAX_JPEG_SCANS} scans (passes over the picture); decoding it would take "
                    "minutes. Save it again as a plain JPEG or as PNG and upload that")
        if segments > MAX_JPEG_SEGMENTS:
            return _pieces(f"JPEG stored in over {MAX_JPEG_SEGMENTS:,} segments")
        if header_bytes > MAX_JPEG_HEADER_BYTES:
            return _pieces(f"JPEG with over {_size(MAX_JPEG_HEADER_BYTES)} of metadata before its picture")
    elif data.startswith(_PNG_SIGNATURE):
        chunks, exif_bytes = png_chunks(data, _allowed(data))
        if chunks > _allowed(data):
            return _pieces(f"PNG stored in over {_allowed(data):,} chunks")
        if exif_bytes > MAX_EXIF_BYTES:
            return _pieces(f"PNG with EXIF data of over {_size(MAX_EXIF_BYTES)}")
    elif data.startswith((b"GIF87a", b"GIF89a")):
        pieces, comment_pieces = gif_pieces(data, _allowed(data), MAX_GIF_COMMENT_PIECES)
        if pieces > _allowed(data):
            return _pieces(f"GIF stored in over {_allowed(data):,} blocks")
        if comment_pieces > MAX_GIF_COMMENT_PIECES:
            return _pieces(f"GIF with a comment of over {MAX_GIF_COMMENT_PIECES:,} pieces")
    elif data[:4] in _TIFF_PREFIXES:
        entries, strips = tiff_entries(data, tiff_pages, MAX_TIFF_ENTRIES)
        if entries > MAX_TIFF_ENTRIES:
            return _pieces(f"TIFF stored in over {MAX_TIFF_ENTRIES:,} tags (a page has a few dozen)")
        if strips > MAX_TIFF_STRIPS:
            return _pieces(f"TIFF stored in over {MAX_TIFF_STRIPS:,} strips or tiles")
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        if webp_exif_bytes(data) > MAX_EXIF_BYTES:
            return _pieces(f"WebP with EXIF data of over {_size(MAX_EXIF_BYTES)}")
    return None


def _allowed(data: bytes) -> int:
    return PIECES_ALLOWED + int(len(data) * PIECES_PER_BYTE_ALLOWED)


def _size(count: int) -> str:
    return f"{count / 2**20:g} MiB" if count >= 2**20 else f"{count / 2**10:g} KiB"


def _pieces(what: str) -> str:
    return (f"{what}, far more than image software writes; reading it would take minutes. "
            "Open it in an image editor, save it again and upload that")


def jpeg_pieces(data: bytes, scans_limit: int, segments_limit: int) -> tuple[int, int, int]:
    """The scans (SOS segments) of the JPEG's first picture, counted up to `scans_limit` + 1; its
    segments, up to `segments_limit` + 1; and the bytes before its first scan, which Pillow
    parses in Python (segments, and stray bytes between them, which it skips one at a time).
    The segments are walked from the start to the picture's end (EOI), each skipped by its
    length (an EXIF thumbnail's scans are inside one). Not FF DA counted over the file: a
    phone's motion photo keeps a video after the picture, where those bytes come once every ~64 KiB."""
    scans = segments = 0
    header_bytes, at = len(data), 2  # after SOI; the whole file unless a scan comes
    while (found := _JPEG_MARKER.search(data, at)) is not None:
        at, code = found.start(), data[found.start() + 1]
        if code == 0xD9:  # EOI: the picture ends
            break
        segments += 1
        if segments > segments_limit:
            break
        if code == 0x01:  # TEM: no length
            at += 2
            continue
        if code == 0xDA:
            if not scans:
                header_bytes = at
            scans += 1
            if scans > scans_limit:
                break
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")  # the segment; a scan's coded data follows it
    return scans, segments, header_bytes


def png_chunks(data: bytes, limit: int) -> tuple[int, int]:
    """The PNG's chunks up to IEND (or the end of the data), counted up to `limit` + 1; and the
    size of its largest EXIF chunk."""
    count, exif, at = 0, 0, len(_PNG_SIGNATURE)
    while at + 8 <= len(data) and count <= limit:
        count += 1
        kind, length = data[at + 4 : at + 8], int.from_bytes(data[at : at + 4], "big")
        if kind == b"IEND":
            break
        if kind == b"eXIf":
            exif = max(exif, length)
        at += 12 + length  # length, type, data, CRC
    return count, exif


def webp_exif_bytes(data: bytes) -> int:
    """The size of the WebP's EXIF chunk (0: none)."""
    at = 12  # RIFF, size, WEBP
    while at + 8 <= len(data):
        kind, length = data[at : at + 4], int.from_bytes(data[at + 4 : at + 8], "little")
        if kind == b"EXIF":
            return length
        at += 8 + length + (length & 1)  # chunks are padded to an even length
    return 0


def gif_pieces(data: bytes, limit: int, comments_limit: int) -> tuple[int, int]:
    """The blocks, stray bytes and sub-blocks short of 255 bytes that Pillow walks in Python to
    open a GIF and tell whether it is animated (everything before the second picture), counted
    up to `limit` + 1; and the pieces of comments among them (extensions and all their
    sub-blocks), up to `comments_limit` + 1."""
    flags = data[10] if len(data) > 10 else 0
    at = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # header, screen, global colours
    pieces = comments = pictures = 0
    while at < len(data) and pieces <= limit and comments <= comments_limit:
        introducer = data[at]
        pieces += 1
        if introducer == 0x21:  # an extension: a label, then sub-blocks
            comment = data[at + 1 : at + 2] == b"\xfe"
            at += 2
        elif introducer == 0x2C:  # a picture: its descriptor, local colours, LZW size, sub-blocks
            pictures += 1
            if pictures == 2:
                break
            local = data[at + 9] if at + 9 < len(data) else 0
            at += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
            comment = False
        elif introducer == 0x3B:  # the trailer
            break
        else:  # a stray byte, which Pillow skips, one at a time
            at += 1
            continue
        comments += comment
        while at < len(data) and pieces <= limit and comments <= comments_limit:  # sub-blocks, to an empty one
            size = data[at]
            at += 1 + size
            pieces += size < 255  # a picture's data comes in full ones: 100 MB of them read in ~0.4 s
            comments += comment
            if not size:
                break
    return pieces, comments


def tiff_entries(data: bytes, pages: int, limit: int) -> tuple[int, int]:
    """The directory entries (tags) of the TIFF's first `pages` pages, counted up to past
    `limit`, and the strips or tiles those pages are stored in. As Pillow reads the header: the
    byte order from its first two bytes, BigTIFF when its third is 43."""
    order = "little" if data[:2] == b"II" else "big"
    if data[2] == 43:  # BigTIFF
        offset_size, count_size, entry_size, first_at = 8, 8, 20, 8
    else:
        offset_size, count_size, entry_size, first_at = 4, 2, 12, 4
    entries = strips = 0
    seen: set[int] = set()
    at = int.from_bytes(data[first_at : first_at + offset_size], order)
    while at and at not in seen and len(seen) < pages and at + count_size <= len(data) and entries <= limit:
        seen.add(at)  # Pillow stops at a directory it has read before
        count = int.from_bytes(data[at : at + count_size], order)
        entries += count
        first_entry = at + count_size
        for entry in range(first_entry, first_entry + entry_size * min(count, limit + 1), entry_size):
            if int.from_bytes(data[entry : entry + 2], order) in _TIFF_STRIP_TAGS:
                strips += int.from_bytes(data[entry + 4 : entry + 4 + offset_size], order)  # its count of values
        next_at = first_entry + count * entry_size
        at = int.from_bytes(data[next_at : next_at + offset_size], order)
    return entries, strips
