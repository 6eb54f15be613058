"""Display thumbnails: written once per (page, size), from memory or from the store, in parallel."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from reranker.documents import load_files
from reranker.thumbnails import PageImages


def test_prepared_thumbnails_are_the_files_path_gives(tmp_path, sample_pages_dir):
    pages = load_files(sorted(sample_pages_dir.glob("doc_*.jpg"))[:4]).pages
    loads = []
    images = PageImages(tmp_path / "thumbs", lambda page_hash: loads.append(page_hash), memory_bytes=2**30)
    futures = images.prepare(pages + pages[:1], 256)  # a repeated page is written once
    paths = [future.result() for future in futures]
    assert len(paths) == 4 and loads == []
    for page, path in zip(pages, paths):
        assert images.path(page.content_hash, 256) == path
        with Image.open(path) as thumbnail:
            assert max(thumbnail.size) == 256 and thumbnail.format == "JPEG"
    assert not list((tmp_path / "thumbs").glob("*.part"))


def test_an_upload_larger_than_the_memory_gets_every_thumbnail_before_it_is_stored(tmp_path, sample_pages_dir):
    """Pages past the memory bound pushed the upload's first pages out before their thumbnails
    were made, and those are not in the store until the ranking is saved: a ranking of more than
    1 GiB of pixels (30 photos, 200 PDF pages) failed with the store's KeyError."""
    pages = load_files(sorted(sample_pages_dir.glob("doc_*.jpg"))[:4]).pages

    def not_stored_yet(page_hash):
        raise KeyError(f"no page {page_hash}")

    images = PageImages(tmp_path / "thumbs", not_stored_yet, memory_bytes=pages[0].width * pages[0].height * 3)
    paths = [future.result() for future in images.prepare(pages, 256)]
    assert len(paths) == 4
    for path in paths:
        with Image.open(path) as thumbnail:
            assert max(thumbnail.size) == 256


def test_a_page_not_in_memory_is_loaded_through_the_store(tmp_path, sample_pages_dir):
    (page,) = load_files([sorted(sample_pages_dir.glob("doc_*.jpg"))[0]]).pages
    loads = []
    images = PageImages(tmp_path / "thumbs", lambda page_hash: loads.append(page_hash) or page.image,
                        memory_bytes=1)  # too small to keep it
    images.remember([page])
    with Image.open(images.path(page.content_hash, 128)) as thumbnail:
        assert max(thumbnail.size) == 128
    assert loads == [page.content_hash]
    images.path(page.content_hash, 128)  # written already: no second load
    assert loads == [page.content_hash]
    # From memory or from the store, the same pixels; the page's shape kept; a small page not enlarged.
    in_memory = PageImages(tmp_path / "other", lambda page_hash: None, memory_bytes=2**30)
    in_memory.remember([page])
    with Image.open(in_memory.path(page.content_hash, 128)) as a, Image.open(images.path(page.content_hash, 128)) as b:
        assert a.tobytes() == b.tobytes()
        assert a.width / a.height == pytest.approx(page.width / page.height, rel=0.02)
    with Image.open(in_memory.path(page.content_hash, 4 * max(page.size))) as full:
        assert full.size == page.size


def test_the_folder_stays_within_its_bytes_and_keeps_what_was_shown_lately(tmp_path, sample_pages_dir):
    import os
    import time

    pages = load_files(sorted(sample_pages_dir.glob("doc_*.jpg"))).pages
    one = PageImages(tmp_path / "probe", lambda h: None, memory_bytes=2**30)
    one.remember(pages[:1])
    size = os.path.getsize(one.path(pages[0].content_hash, 256))
    images = PageImages(tmp_path / "thumbs", lambda h: None, memory_bytes=2**30, disk_bytes=4 * size)
    images.remember(pages)
    first = images.path(pages[0].content_hash, 256)
    an_hour_ago = time.time() - 3600
    for number, page in enumerate(pages[1:], start=1):  # each shown an hour ago, in turn...
        os.utime(images.path(page.content_hash, 256), (an_hour_ago + number, an_hour_ago + number))
        os.utime(first, (an_hour_ago + 100, an_hour_ago + 100))  # ...and the first again after each
    files = list((tmp_path / "thumbs").glob("*.jpg"))
    assert sum(f.stat().st_size for f in files) <= 4 * size * 1.5 and len(files) < len(pages)
    assert os.path.exists(first)  # the one shown lately stays
    gone = next(page for page in pages if not (tmp_path / "thumbs" / f"{page.content_hash[:32]}-256.jpg").exists())
    assert os.path.exists(images.path(gone.content_hash, 256))  # made again when shown


def test_a_thumbnail_used_in_the_last_minute_is_never_swept(tmp_path, sample_pages_dir):
    """`path` may just have handed it to a page being shown: the folder may run over instead."""
    pages = load_files(sorted(sample_pages_dir.glob("doc_*.jpg"))[:4]).pages
    images = PageImages(tmp_path / "thumbs", lambda h: None, memory_bytes=2**30, disk_bytes=1)
    images.remember(pages)
    paths = [images.path(page.content_hash, 128) for page in pages]
    images.sweep()
    assert all(Path(path).exists() for path in paths)


def test_a_thumbnail_that_fails_to_write_leaves_no_part_and_a_stale_part_is_swept(tmp_path, sample_pages_dir, monkeypatch):
    """A full disk left each failed write's private ".part" file, and one a process ended while
    writing stayed too: the sweep counts JPEGs only, so they grew unbounded exactly when the disk was full."""
    import os
    import time

    (page,) = load_files(sorted(sample_pages_dir.glob("doc_*.jpg"))[:1]).pages
    folder = tmp_path / "thumbs"
    images = PageImages(folder, lambda h: None, memory_bytes=2**30)
    images.remember([page])
    real_save = Image.Image.save

    def disk_full(self, fp, *args, **kwargs):
        real_save(self, fp, *args, **kwargs)  # written part-way, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        images.path(page.content_hash, 128)
    assert list(folder.iterdir()) == []
    monkeypatch.undo()
    stale, fresh = folder / "0123abcd-128.140213.part", folder / "4567abcd-128.140214.part"
    stale.write_bytes(b"\xff\xd8 half")
    fresh.write_bytes(b"\xff\xd8 being written")  # another process's, now
    an_hour_ago = time.time() - 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    PageImages(folder, lambda h: None, memory_bytes=2**30)  # a start sweeps the folder
    assert sorted(path.name for path in folder.iterdir()) == [fresh.name]
    assert os.path.exists(images.path(page.content_hash, 128))
