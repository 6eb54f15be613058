"""Image files built to make Pillow slow, refused from their bytes before Pillow reads them.

Pillow reads an image's structure (a JPEG's segments, a PNG's chunks, a GIF's blocks, a TIFF's
directory entries) in Python, one piece at a time, and a GIF's comment pieces at quadratic
cost; images are read in the request's thread, with no time limit (unlike PDF pages, which
workers render under one). A small file of many tiny pieces is a small picture that takes
minutes to read. Measured on a 2-core machine, through `load_files`: a 2.4 MB PNG of 200,000
empty chunks 2.4 s (a 100 MB one: ~100 s); a 0.4 MB GIF comment of 200,000 one-byte pieces
4.3 s (quadratic); a 14 MB TIFF of 20 pages of 60,000 tags each 34 s; a 1.6 MB JPEG of 400,000
empty comments 3 s. So each check counts the pieces Pillow would parse in Python, stopping
past its limit, and a file over it is refused with a reason a person can act on.

The limits sit far above what cameras, scanners and image libraries write (libpng writes a
chunk per 8 KiB of pixels, a GIF encoder 255-byte pieces, a TIFF page has a few dozen tags) and
where Pillow's reading stays around a second at most. Decoding itself (in C) is not counted
here, except a JPEG's scans: libjpeg decodes each again over the whole picture.
"""

from __future__ import annotations

import re

MAX_JPEG_SCANS = 100  # a photo has about 10; libjpeg-turbo's djpeg has -maxscans for the same files
MAX_JPEG_HEADER_SEGMENTS = 1_000  # before the first scan; an ICC profile takes at most 255
MAX_GIF_COMMENT_PIECES = 1_000  # Pillow joins them with bytes +=: quadratic
MAX_TIFF_ENTRIES = 50_000  # over the pages Pillow walks; a 1,000-page fax has ~15,000
PIECES_PER_BYTE_ALLOWED = 1 / 1024  # PNG chunks, GIF pieces: plus a fixed allowance below
PIECES_ALLOWED = 10_000

# A JPEG marker: FF and a code that is not a stuffed zero, a restart marker or fill (entropy-coded
# data holds FF only as those).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF, either byte order


def too_slow_to_read(data: bytes, tiff_pages: int = 1001) -> str | None:
    """Why the image in `data` would take Pillow too long to read, or None. `tiff_pages`: how
    many of a TIFF's pages are read (the first ones)."""
    if data.startswith(b"\xff\xd8\xff"):
        scans, header_segments = jpeg_pieces(data, MAX_JPEG_SCANS, MAX_JPEG_HEADER_SEGMENTS)
        if scans > MAX_JPEG_SCANS:
            return (f"JPEG stored in over {MAX_JPEG_SCANS} scans (passes over the picture); decoding it would take "
                    "minutes. Save it again as a plain JPEG or as PNG and upload that")
        if header_segments > MAX_JPEG_HEADER_SEGMENTS:
            return _pieces("JPEG", f"over {MAX_JPEG_HEADER_SEGMENTS:,} segments before its picture")
    elif data.startswith(_PNG_SIGNATURE):
        if png_chunks(data, _allowed(data)) > _allowed(data):
            return _pieces("PNG", f"over {_allowed(data):,} chunks")
    elif data.startswith((b"GIF87a", b"GIF89a")):
        pieces, comment_pieces = gif_pieces(data, _allowed(data), MAX_GIF_COMMENT_PIECES)
        if pieces > _allowed(data):
            return _pieces("GIF", f"over {_allowed(data):,} blocks")
        if comment_pieces > MAX_GIF_COMMENT_PIECES:
            return _pieces("GIF", f"a comment of over {MAX_GIF_COMMENT_PIECES:,} pieces")
    elif data[:4] in _TIFF_SIGNATURES:
        if tiff_entries(data, tiff_pages, MAX_TIFF_ENTRIES) > MAX_TIFF_ENTRIES:
            return _pieces("TIFF", f"over {MAX_TIFF_ENTRIES:,} tags (a page has a few dozen)")
    return None


def _allowed(data: bytes) -> int:
    return PIECES_ALLOWED + int(len(data) * PIECES_PER_BYTE_ALLOWED)


def _pieces(kind: str, what: str) -> str:
    return (f"{kind} stored in {what}, far more than image software writes; reading it would take minutes. "
            "Open it in an image editor, save it again and upload that")


def jpeg_pieces(data: bytes, scans_limit: int, segments_limit: int) -> tuple[int, int]:
    """The scans (SOS segments) of the JPEG's first picture, counted up to `scans_limit` + 1, and
    its segments before the first scan (which Pillow parses), up to `segments_limit` + 1. The
    segments are walked from the start to the picture's end (EOI), each skipped by its length
    (an EXIF thumbnail's scans are inside one). Not FF DA counted over the file: a phone's
    motion photo keeps a video after the picture, where those bytes come once every ~64 KiB."""
    scans, header_segments, at = 0, 0, 2  # after SOI
    while (found := _JPEG_MARKER.search(data, at)) is not None:
        at, code = found.start(), data[found.start() + 1]
        if code == 0xD9:  # EOI: the picture ends
            break
        if not scans:
            header_segments += 1
            if header_segments > segments_limit:
                break
        if code == 0x01:  # TEM: no length
            at += 2
            continue
        if code == 0xDA:
            scans += 1
            if scans > scans_limit:
                break
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")  # the segment; a scan's coded data follows it
    return scans, header_segments


def png_chunks(data: bytes, limit: int) -> int:
    """The PNG's chunks up to IEND (or the end of the data), counted up to `limit` + 1."""
    count, at = 0, len(_PNG_SIGNATURE)
    while at + 8 <= len(data) and count <= limit:
        count += 1
        if data[at + 4 : at + 8] == b"IEND":
            break
        at += 12 + int.from_bytes(data[at : at + 4], "big")  # length, type, data, CRC
    return count


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


def tiff_entries(data: bytes, pages: int, limit: int) -> int:
    """The directory entries (tags) of the TIFF's first `pages` pages, counted up to past `limit`."""
    order = "little" if data[:2] == b"II" else "big"
    version = int.from_bytes(data[2:4], order)
    if version == 42:
        offset_size, count_size, entry_size, first_at = 4, 2, 12, 4
    elif version == 43:  # BigTIFF
        offset_size, count_size, entry_size, first_at = 8, 8, 20, 8
    else:
        return 0
    total, seen = 0, set()
    at = int.from_bytes(data[first_at : first_at + offset_size], order)
    while at and at not in seen and len(seen) < pages and at + count_size <= len(data) and total <= limit:
        seen.add(at)  # Pillow stops at a directory it has read before
        count = int.from_bytes(data[at : at + count_size], order)
        total += count
        next_at = at + count_size + count * entry_size
        at = int.from_bytes(data[next_at : next_at + offset_size], order)
    return total
