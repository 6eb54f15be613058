"""The launched app in a real browser (Playwright driving Debian's Chromium).

Ranks an uploaded PDF and reads both galleries, checks that user text and file names render as
text, and annotates with the keyboard only, across a reload (the annotator's name lives in the
browser's localStorage through gr.BrowserState).

`UPDATE_SCREENSHOT=1 pytest tests/test_browser.py` also writes docs/screenshot.png (the README's).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from .app_server import ROOT, SAMPLES, app_server_fixture, sample_pdf

playwright_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium, or set CHROMIUM)", allow_module_level=True)

from playwright.sync_api import expect  # noqa: E402
from reranker.ui import text as ui_text  # noqa: E402

app_server = app_server_fixture()

TIMEOUT_MS = 60_000  # ranking on a busy 2-core machine; everything else takes far less
expect.set_options(timeout=20_000)  # expect()'s own default is 5 s: too tight for a loaded CI machine
CAPTION = re.compile(r"^#(\d+) · P\(yes\) (\d\.\d{3}) · ")


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_server):
    """A fresh browser context (empty localStorage) on the app; requests leave only to the app."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]|data:|blob:)"), lambda route: route.abort())
    page = context.new_page()
    page.dialogs = []  # any alert()/confirm() would be an injected script
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(app_server.url)
    expect(page.locator("#rank-button")).to_be_visible()
    yield page
    context.close()


def rank(page, files, query: str) -> None:
    """Upload, type the query, press Rank and wait for both galleries."""
    page.locator("#uploads input[type=file]").set_input_files(files)
    # The upload finished when the file list shows (before that, Rank would see no files).
    expect(page.locator("#uploads table, #uploads .file-preview").first).to_be_visible()
    page.locator("#query textarea, #query input").first.fill(query)
    page.get_by_role("button", name="Rank", exact=True).click()
    for gallery in ("#gallery-a", "#gallery-b"):
        expect(page.locator(f"{gallery} .caption-label").first).to_be_visible(timeout=TIMEOUT_MS)


def open_annotate(page) -> None:
    """Reload, open the Annotate tab and wait for the page load's own updates: they set the name
    box (from the browser's memory), and would overwrite a name typed before they arrive."""
    page.reload()
    page.get_by_role("tab", name="Annotate", exact=True).click()
    expect(page.locator("#annotate-progress")).to_contain_text(" judged")
    expect(page).to_have_url(re.compile(r"\?tab=annotate$"))  # what a reload opens


PAGE_IMAGE_IN = "() => { const image = document.querySelector('#annotate-image img'); return !image || image.complete; }"
# No event redrawing the page view is on its way (Gradio's status on the progress line is hidden).
VIEW_SETTLED = ("() => { const t = document.querySelector('#annotate-progress [data-testid=\"status-tracker\"]');"
                " return !t || t.classList.contains('hide'); }")


def choose_order(page, order: str) -> None:
    """Pick the Annotate tab's Order (a dropdown: it lets go of the focus once chosen)."""
    page.locator("#annotate-order input").click()
    page.get_by_role("option", name=order, exact=True).click()


def judge_key(page, key: str) -> None:
    """Press R, N or S once the page view is in and its image has arrived (the app ignores them
    before: the old page would still be on screen)."""
    page.wait_for_function(VIEW_SETTLED)
    page.wait_for_function(PAGE_IMAGE_IN)
    page.keyboard.press(key)


def settled(page, *selectors: str) -> None:
    """No event is running on these components: while one runs, Gradio shows its elapsed time
    ("0.4s") in each of its outputs."""
    for selector in selectors:
        expect(page.locator(selector)).not_to_contain_text(re.compile(r"\b\d+\.\ds\b"))


# Whether an element lies wholly inside every box around it that hides what overflows.
UNCLIPPED = """element => {
    const box = element.getBoundingClientRect();
    for (let outer = element.parentElement; outer; outer = outer.parentElement) {
        if (getComputedStyle(outer).overflow === "visible") continue;
        const clip = outer.getBoundingClientRect();
        if (box.top < clip.top - 1 || box.bottom > clip.bottom + 1 || box.left < clip.left - 1 || box.right > clip.right + 1) return false;
    }
    return true;
}"""


def captions(page, gallery: str) -> list[str]:
    return page.locator(f"{gallery} .caption-label").all_inner_texts()


def test_a_file_that_could_not_be_read_is_named_in_view_not_scrolled_past(page, tmp_path):
    """The page scrolls down to a ranking's results, past the status line that names the files
    not read: with nothing ranked, all that showed were empty galleries."""
    from .bad_inputs import pdf_header_only

    broken = tmp_path / "corrupt-report.pdf"
    broken.write_bytes(pdf_header_only())
    in_view = ("() => { const box = document.querySelector('#rank-status').getBoundingClientRect();"
               " return box.top >= 0 && box.top < window.innerHeight; }")
    status = page.locator("#rank-status")
    for files, said in (([broken], "Nothing was ranked"), ([broken, SAMPLES / "doc_1.jpg"], "1 page, read in")):
        page.evaluate("window.scrollTo(0, 0)")
        page.locator("#uploads input[type=file]").set_input_files([str(path) for path in files])
        expect(page.locator("#uploads table, #uploads .file-preview").first).to_be_visible()
        page.locator("#query textarea, #query input").first.fill("Which share of users was unknown?")
        page.get_by_role("button", name="Rank", exact=True).click()
        expect(status).to_contain_text(said, timeout=TIMEOUT_MS)
        expect(status).to_contain_text("corrupt-report.pdf")
        settled(page, "#rank-status")
        time.sleep(1)  # what a smooth scroll down would take
        assert page.evaluate(in_view), files


def test_a_long_file_name_shows_whole_in_the_captions_on_a_wide_screen_and_a_phone(page, tmp_path):
    """A name without spaces was cut with an ellipsis: "…_final_v3.jpg" and "…_final_v6.jpg"
    read the same in every caption, and nothing else on screen said which file a page was."""
    import shutil

    stem = "Quarterly_Financial_Report_FY2023_Consolidated_Statements_final_v"
    files = []
    for number, version in ((1, 3), (3, 6)):
        files.append(tmp_path / f"{stem}{version}.jpg")
        shutil.copy(SAMPLES / f"doc_{number}.jpg", files[-1])
    rank(page, [str(path) for path in files], "Which share of users was unknown?")
    cut = """() => [...document.querySelectorAll('#gallery-a .caption-label, #gallery-b .caption-label')]
                 .filter(caption => caption.scrollWidth > caption.clientWidth + 1).length"""
    for width in (1400, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.locator("#gallery-b").scroll_into_view_if_needed()
        expect(page.locator("#gallery-a .caption-label")).to_have_count(2)
        assert page.evaluate(cut) == 0, width
        assert sorted(re.search(r"final_v\d\.jpg", text).group(0) for text in captions(page, "#gallery-a")) == [
            "final_v3.jpg", "final_v6.jpg"]


def test_rank_a_pdf_shows_both_galleries_in_score_order(page, tmp_path):
    pdf = sample_pdf(tmp_path / "three-pages.pdf", numbers=(9, 4, 1))
    rank(page, str(pdf), "Which region of the SUC2 frequency plot leads to extinction?")
    for gallery in ("#gallery-a", "#gallery-b"):
        expect(page.locator(f"{gallery} .caption-label")).to_have_count(3)
        texts = captions(page, gallery)
        matches = [CAPTION.match(text) for text in texts]
        assert all(matches), texts
        assert [int(m.group(1)) for m in matches] == [1, 2, 3], texts
        scores = [float(m.group(2)) for m in matches]
        assert scores == sorted(scores, reverse=True), texts
        assert all(0.0 <= score <= 1.0 for score in scores)
        assert sorted(re.search(r"three-pages\.pdf · p\.(\d)", text).group(1) for text in texts) == ["1", "2", "3"]
    expect(page.locator("#header-a")).to_contain_text("3 pages in")
    expect(page.locator("#header-b")).to_contain_text("3 pages in")
    expect(page.locator("#rank-status")).to_contain_text("3 pages, read in")
    # The results came into view: they start below the upload and the examples, out of sight.
    page.wait_for_function("() => { const top = document.querySelector('#header-a').getBoundingClientRect().top;"
                           " return top > -2 && top < window.innerHeight * 0.6; }")

    # Thumbnails are lazy: bring them into view and wait until every one has decoded.
    page.locator("#gallery-b").scroll_into_view_if_needed()
    page.wait_for_function(
        """() => { const images = [...document.querySelectorAll('#gallery-a img, #gallery-b img')];
                   return images.length === 6 && images.every(i => i.complete && i.naturalWidth > 0); }"""
    )
    page.evaluate("window.scrollTo(0, 0)")
    shot = tmp_path / "rank.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        target = ROOT / "docs" / "screenshot.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
    assert page.dialogs == []

    # Three thumbnails a row, fewer where they would be under 150 px (Gradio's fixed three
    # columns left them ~100 px wide in an 800 px window).
    def thumbnails() -> list[dict]:
        return [item.bounding_box() for item in page.locator("#gallery-a .thumbnail-item").all()]

    assert len({round(box["y"]) for box in thumbnails()[:3]}) == 1  # one row at 1400 px
    # The scatter plot's axis titles are not cut off by its box (the x title was).
    titles = page.locator("#scatter-plot .role-axis-title text")
    expect(titles).to_have_count(2)
    assert all(title.evaluate(UNCLIPPED) for title in titles.all())
    # Its points stand out from it by 3:1 or more in either scheme (thin orange outlines at 70%
    # opacity did not).
    points = page.locator("#scatter-plot [aria-roledescription=point]")
    expect(points).to_have_count(3)
    assert_points_stand_out(page, points)
    # The dashed line where both models agree (y = x), under the pointer's way to the points.
    plot = page.locator("#scatter-plot")
    expect(plot.locator(".arena-diagonal")).to_be_visible()
    assert_diagonal_is_y_equals_x(plot)
    points.first.hover()  # Playwright refuses when another element would take the pointer
    tooltip = page.locator("#vg-tooltip-element")  # the page and both scores, to 4 places (not 17 digits)
    expect(tooltip).to_have_class(re.compile(r"\bvisible\b"))
    expect(tooltip).to_contain_text(re.compile(r"three-pages\.pdf · p\.\d"))
    assert len(re.findall(r"\b[01]\.\d{1,4}\b", tooltip.inner_text())) == 2, tooltip.inner_text()
    assert not re.search(r"\d\.\d{5}", tooltip.inner_text()), tooltip.inner_text()
    page.set_viewport_size({"width": 800, "height": 900})
    page.wait_for_function("document.querySelector('#gallery-a .thumbnail-item').getBoundingClientRect().width >= 150")
    boxes = thumbnails()
    assert boxes[0]["y"] == boxes[1]["y"] < boxes[2]["y"]  # two a row
    # Drawn again for the narrower plot.
    page.wait_for_function("""() => { const line = document.querySelector('#scatter-plot .arena-diagonal').getBoundingClientRect();
                                      const frame = document.querySelector('#scatter-plot path.background').getBoundingClientRect();
                                      return Math.abs(line.right - frame.right) < 1 && Math.abs(line.bottom - frame.bottom) < 1; }""")
    assert_diagonal_is_y_equals_x(plot)


def test_results_come_into_view_at_once_for_someone_who_asked_for_less_motion(page):
    """The page scrolled smoothly down to the results even when the system asked for reduced
    motion (prefers-reduced-motion), which some people need to avoid nausea or dizziness."""
    page.emulate_media(reduced_motion="reduce")
    page.evaluate("window.scrolled = []; window.addEventListener('scroll', () => window.scrolled.push(window.scrollY))")
    rank(page, str(SAMPLES / "doc_1.jpg"), "reduced motion query")
    page.wait_for_function("() => { const top = document.querySelector('#header-a').getBoundingClientRect().top;"
                           " return top > -2 && top < window.innerHeight * 0.6; }")
    page.wait_for_timeout(1000)
    positions = page.evaluate("window.scrolled")
    assert len(set(positions)) == 1 and positions[0] > 0, positions  # one jump, no steps between


def test_the_keyboard_focus_follows_what_a_ranking_or_a_thumbnail_brings_into_view(page):
    """Enter in the query box scrolled to the results and left the focus in the box, above the
    screen (the next Tab went back up); Enter on a thumbnail scrolled to the page shown large and
    left it on the thumbnail."""
    page.set_viewport_size({"width": 390, "height": 800})
    page.locator("#uploads input[type=file]").set_input_files([str(SAMPLES / f"doc_{n}.jpg") for n in (2, 8)])
    expect(page.locator("#uploads table, #uploads .file-preview").first).to_be_visible()
    box = page.locator("#query textarea, #query input").first
    box.fill("focus follows query")
    box.press("Enter")
    expect(page.locator("#gallery-b .caption-label").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#header-a")).to_be_focused()
    # Not from someone typing the next question meanwhile: the focus stays, and so does what is typed.
    box.fill("focus stays query")
    box.press("Enter")
    page.keyboard.type(" and more words", delay=20)
    expect(page.locator("#rank-status")).to_contain_text("Query: focus stays query", timeout=TIMEOUT_MS)
    page.wait_for_timeout(500)  # the results' own step has run
    expect(box).to_be_focused()
    expect(box).to_have_value("focus stays query and more words")
    page.evaluate("window.scrollTo(0, 0)")
    thumbnail = page.locator("#gallery-a button.thumbnail-item").first
    thumbnail.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#detail-image img")).to_be_visible()
    expect(page.locator("#detail-text")).to_be_focused()
    page.wait_for_function("() => document.querySelector('#detail-image').getBoundingClientRect().top < 800")  # in view
    # The thumbnail shown is marked for a screen reader too, and by a ring that stands out (1 px, 2.8:1).
    expect(thumbnail).to_have_attribute("aria-current", "true")
    expect(page.locator("#gallery-a button.thumbnail-item[aria-current]")).to_have_count(1)
    ring = thumbnail.evaluate("e => getComputedStyle(e).boxShadow")
    assert re.search(r"rgb\(234, 88, 12\) 0px 0px 0px 3px", ring), ring


def test_a_ranking_shows_its_progress_and_a_new_one_clears_the_page_shown_large(page):
    files = [str(SAMPLES / f"doc_{n}.jpg") for n in range(10)]
    page.locator("#uploads input[type=file]").set_input_files(files)
    expect(page.locator("#uploads table, #uploads .file-preview").first).to_be_visible()
    page.locator("#query textarea, #query input").first.fill(f"progress query {time.time()}")  # new: no stored scores
    page.get_by_role("button", name="Rank", exact=True).click()
    # Each model's "<model>: n/10 pages" shows over the status line while it scores, the line tall
    # enough to read it (before the first ranking it holds a hint: empty, it was 0 px tall) and in
    # view without scrolling (below the examples, it was not). Polled every frame: the tiny models
    # score a batch in well under a second.
    page.wait_for_function(
        """() => { const status = document.querySelector('#rank-status');
                   const box = status.getBoundingClientRect();  // and on screen, unscrolled
                   return /(Qwen3-VL-Reranker-2B|Qwen3RerankerMM-2B): \\d+\\/10 pages/.test(status.innerText)
                          && box.height >= 16 && box.bottom <= window.innerHeight; }""",
        polling="raf", timeout=TIMEOUT_MS)
    expect(page.locator("#gallery-a .caption-label")).to_have_count(10, timeout=TIMEOUT_MS)
    expect(page.locator("#rank-status")).not_to_contain_text("pages -")  # the bar is gone when done

    page.locator("#gallery-a .thumbnail-item, #gallery-a button.thumbnail-item").first.click()
    detail = page.locator("#detail-text")
    expect(detail).to_contain_text("rank #")
    expect(page.locator("#gallery-a .thumbnail-item.selected")).to_have_count(1)
    expect(page.locator("#detail-image img")).to_be_visible()
    # The page shown large is brought into view (it sat below both galleries), and it is the page
    # marked in both galleries (the other one kept marking the page clicked there before).
    page.wait_for_function("() => { const box = document.querySelector('#detail-image').getBoundingClientRect();"
                           " return box.top >= -1 && box.top < window.innerHeight / 2; }")
    label_above_the_page(page, "#detail-image")

    def marked(gallery: str) -> str:
        caption = page.locator(f"{gallery} .thumbnail-item.selected .caption-label")
        expect(caption).to_have_count(1)
        return re.search(r"doc_\d+\.jpg", caption.inner_text()).group(0)

    assert marked("#gallery-b") == marked("#gallery-a") and marked("#gallery-a") in detail.inner_text()
    page.locator("#gallery-b .thumbnail-item").last.click()
    expect(detail).to_contain_text(marked("#gallery-b"))
    assert marked("#gallery-a") == marked("#gallery-b")
    page.locator("#query textarea, #query input").first.fill(f"a second question {time.time()}")
    page.get_by_role("button", name="Rank", exact=True).click()
    # Meanwhile the last ranking's results are faded: they passed for the new query's.
    page.wait_for_function("() => ['#agreement', '#detail-text', '#header-a'].every("
                           " id => getComputedStyle(document.querySelector(id)).opacity < 0.5)", polling="raf", timeout=TIMEOUT_MS)
    expect(page.locator("#rank-status")).to_contain_text("a second question", timeout=TIMEOUT_MS)
    page.wait_for_function("() => getComputedStyle(document.querySelector('#agreement')).opacity === '1'")
    expect(detail).to_have_text("Click a page to see it large with both scores.")  # not the last query's scores
    expect(page.locator("#detail-image img")).to_have_count(0)
    # Nor is a thumbnail of the new ranking marked as the one shown: it sits where the old one was.
    expect(page.locator("#gallery-a .thumbnail-item.selected")).to_have_count(0)
    page.locator("#gallery-a .thumbnail-item, #gallery-a button.thumbnail-item").first.click()  # and picking still works
    expect(detail).to_contain_text("rank #")
    expect(page.locator("#gallery-a .thumbnail-item.selected")).to_have_count(1)
    assert page.dialogs == []


def test_what_keeps_a_ranking_from_starting_is_said_at_its_box_not_as_an_error(page):
    """No upload, no query: each box says what it needs (it was one red "Error" over the page),
    and says nothing more once it has it."""
    page.get_by_role("button", name="Rank", exact=True).click()
    expect(page.locator("#uploads")).to_contain_text("Upload at least one PDF or image (or click an example).")
    expect(page.locator("#query")).to_contain_text("The query is empty: type what you are looking for.")
    expect(page.locator(".toast-body")).to_have_count(0)
    page.locator("#uploads input[type=file]").set_input_files(str(SAMPLES / "doc_1.jpg"))
    expect(page.locator("#uploads table, #uploads .file-preview").first).to_be_visible()
    page.locator("#query textarea, #query input").first.fill("a chart")
    page.get_by_role("button", name="Rank", exact=True).click()
    expect(page.locator("#gallery-a .caption-label")).to_have_count(1)
    expect(page.locator("#query")).not_to_contain_text("The query is empty")
    expect(page.locator("#uploads")).not_to_contain_text("Upload at least one")


# WCAG's contrast ratio of an element's text colour against its (opaque) background colour.
# WCAG's relative luminance of a CSS rgb()/rgba() colour, and the contrast ratio of two.
CONTRAST_OF = """(one, other) => {
    const luminance = colour => {
        const [r, g, b] = colour.match(/[\\d.]+/g).slice(0, 3).map(v => {
            v = Number(v) / 255;
            return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
        });
        return 0.2126 * r + 0.7152 * g + 0.0722 * b;
    };
    const [a, b] = [luminance(one), luminance(other)].sort((x, y) => y - x);
    return (a + 0.05) / (b + 0.05);
}"""
# An element's text on its own background.
CONTRAST = f"element => ({CONTRAST_OF})(getComputedStyle(element).color, getComputedStyle(element).backgroundColor)"


def test_the_coloured_buttons_text_is_legible_in_either_scheme(page, app_server):
    """White on the theme's orange measured 2.8:1 (Rank, Relevant, Export, Evaluate), on its red
    3.8:1 (Not relevant): text needs 4.5:1 (WCAG AA)."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.goto(app_server.url)  # a reload would reopen Annotate (its address, after the first scheme)
        expect(page.locator("#rank-button")).to_be_visible()
        for selector in ("#rank-button", "#judge-relevant", "#judge-not-relevant"):
            if selector.startswith("#judge"):
                page.get_by_role("tab", name="Annotate", exact=True).click()
            button = page.locator(selector)
            button = button if button.evaluate("e => e.tagName") == "BUTTON" else button.locator("button")
            assert button.evaluate(CONTRAST) >= 4.5, (scheme, selector, button.evaluate(CONTRAST))


def drawn_contrast(css_property: str) -> str:
    """A script: the contrast of an element's `css_property` colour (its outline, an SVG mark's
    stroke) with the background it is drawn on (the nearest box with one)."""
    return f"""element => {{
    let box = element.parentElement;
    while (box && /rgba\\(.*, 0\\)$|transparent/.test(getComputedStyle(box).backgroundColor)) box = box.parentElement;
    return ({CONTRAST_OF})(getComputedStyle(element).{css_property}, box ? getComputedStyle(box).backgroundColor : "rgb(255, 255, 255)");
}}"""


def assert_points_stand_out(page, points) -> None:
    """Each plot point opaque and 3:1 or more on the plot's background, in either scheme (Vega draws
    thin outlines at 70% opacity)."""
    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        for point in points.all():
            assert point.evaluate("e => getComputedStyle(e).opacity") == "1"
            contrast = point.evaluate(drawn_contrast("stroke"))
            assert contrast >= 3, (scheme, point.get_attribute("aria-label"), contrast)


# Where the dashed y = x line (static/diagonal.js) lies against the plot's own axes: its box, the
# direction it runs, and where each inner tick label sits (the end labels are drawn flush
# inside the plot, off their ticks).
DIAGONAL_AND_TICKS = """block => {
    const line = block.querySelector(':scope > .arena-diagonal line');
    const box = line.getBoundingClientRect();
    const frame = block.querySelector('svg.marks path.background').getBoundingClientRect();
    const ticks = [];
    for (const text of block.querySelectorAll('svg.marks .role-axis-label text')) {
        const value = Number(text.textContent), at = text.getBoundingClientRect();
        if (!(value > 0 && value < 1)) continue;
        if (at.top > frame.bottom) ticks.push(['x', value, at.left + at.width / 2]);
        else ticks.push(['y', value, at.top + at.height / 2]);
    }
    const end = name => Number(line.getAttribute(name));
    return {left: box.left, right: box.right, top: box.top, bottom: box.bottom, ticks,
            rising: end('x1') < end('x2') && end('y1') > end('y2'),
            passThrough: getComputedStyle(block.querySelector('.arena-diagonal')).pointerEvents === 'none'};
}"""


def assert_diagonal_is_y_equals_x(plot) -> None:
    """The dashed line runs from the plot's (0, 0) to its (1, 1), on the plot's own scale, and
    leaves the points to the pointer."""
    found = plot.evaluate(DIAGONAL_AND_TICKS)
    assert found["rising"] and found["passThrough"], found
    width, height = found["right"] - found["left"], found["bottom"] - found["top"]
    assert width > 100 and height > 100 and len(found["ticks"]) >= 8, found
    for axis, value, at in found["ticks"]:
        expected = found["left"] + value * width if axis == "x" else found["bottom"] - value * height
        assert abs(at - expected) <= 1.5, (axis, value, at, expected)


def test_an_image_budget_slider_reached_with_tab_shows_the_focus(page, app_server):
    """Gradio draws no focus indicator on a slider's track: nothing showed that the arrow keys
    would now move the budget. The indicator needs 3:1 on its background (it was 2.9:1 on the
    dark scheme's blocks)."""
    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        page.goto(app_server.url)
        page.get_by_role("button", name="Instruction and settings").click()
        page.get_by_label("number input for Qwen3-VL-Reranker-2B", exact=False).focus()
        for _ in range(4):  # the number box, its reset button, then the track
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.type") == "range":
                break
        track = page.locator("input[type=range]:focus")
        assert track.get_attribute("aria-label").startswith("range slider for Qwen3-VL-Reranker-2B")
        style = track.evaluate("e => [getComputedStyle(e).outlineStyle, parseFloat(getComputedStyle(e).outlineWidth)]")
        assert style[0] != "none" and style[1] >= 2, style
        assert track.evaluate(drawn_contrast("outlineColor")) >= 3, (scheme, track.evaluate(drawn_contrast("outlineColor")))
    page.keyboard.press("ArrowLeft")  # and the keys do move it
    expect(page.get_by_label("number input for Qwen3-VL-Reranker-2B", exact=False)).to_have_value("1279")


def test_text_boxes_and_check_boxes_reached_with_tab_show_the_focus(page, app_server):
    """Gradio removes a text box's focus outline for a pale border (1.8:1 on white; in the dark
    scheme focused and unfocused looked the same) and draws none on a check box: someone using
    the keyboard could not see where the next keys would go."""
    def shows_focus(element, scheme):
        style = element.evaluate("e => [getComputedStyle(e).outlineStyle, parseFloat(getComputedStyle(e).outlineWidth)]")
        assert style[0] != "none" and style[1] >= 2, (scheme, style)
        assert element.evaluate(drawn_contrast("outlineColor")) >= 3, scheme

    for scheme in ("dark", "light"):
        page.emulate_media(color_scheme=scheme)
        page.goto(app_server.url)
        query = page.locator("#query textarea")
        query.focus()
        shows_focus(query, scheme)
        page.get_by_role("tab", name="Annotate", exact=True).click()
        page.locator("#next-query").focus()
        page.keyboard.press("Tab")  # to the keys switch
        switch = page.locator("#shortcuts-on input[type=checkbox]")
        expect(switch).to_be_focused()
        shows_focus(switch, scheme)


def test_user_text_and_file_names_render_as_text(page, tmp_path):
    payload = sample_pdf(tmp_path / "any.pdf", numbers=(2,)).read_bytes()
    query = "<img src=x onerror=alert(1)> O'Brien's > $$x^2$$"  # no markup, no entity text, no LaTeX
    joined = []  # each event's request to join the queue
    page.on("request", lambda request: joined.append(request) if "/queue/join?" in request.url else None)
    rank(page, [{"name": "<b>x</b>.pdf", "mimeType": "application/pdf", "buffer": payload}], query)
    # The page says it is the page: only then are an endpoint's errors escaped for its toasts
    # (`api_errors`; API clients get them as text).
    assert joined and all(request.all_headers().get("x-gradio-user") == ui_text.FROM_THE_PAGE for request in joined)

    status = page.locator("#rank-status")
    expect(status).to_contain_text(f"Query: {query}")
    # The name as the browser holds it, shown as text by the upload list.
    expect(page.locator("#uploads")).to_contain_text("<b>x</b>")
    areas = "#rank-status, #header-a, #header-b, #gallery-a, #gallery-b, #agreement, #uploads"
    assert page.locator(", ".join(f"{area} b" for area in areas.split(", "))).count() == 0
    assert page.locator("#rank-status img, #rank-status .katex").count() == 0

    # The Annotate tab shows the same query (the newest ranking) as text too.
    page.get_by_role("tab", name="Annotate", exact=True).click()
    expect(page.locator("#annotate-info")).to_contain_text(query)
    assert page.locator("#annotate-info img, #annotate-info b").count() == 0
    expect(page.locator("#query-pick input")).to_have_value(re.compile(" judged — " + re.escape(query) + "$"))

    # Nowhere on the page did the payload become markup or run.
    assert page.evaluate("document.querySelectorAll('img[onerror], img[src=\"x\"]').length") == 0
    assert page.dialogs == []


def test_annotate_with_the_keyboard_survives_a_reload(page, app_server):
    from gradio_client import Client, handle_file

    from reranker.store import Store

    # A ranking to annotate, made through the API (the browser test above covers the Rank tab).
    query = "keyboard annotation query"
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (3, 5, 7, 8)]
    ranked = Client(app_server.url, verbose=False).predict(files=files, query=query, api_name="/rank")
    query_id, total = ranked["query_id"], len(ranked["pages"])
    assert total == 4
    store = Store(app_server.db_path)

    def labels(annotator: str | None = None) -> dict[tuple[str, str], str]:
        """(annotator, page hash) → current label on this query, everyone's or one annotator's."""
        return {(j.annotator, j.page_hash): j.label for j in store.current_judgments(query_id=query_id, annotator=annotator)}

    open_annotate(page)  # the query list is filled on page load
    name_box = page.locator("#annotator input")
    progress = page.locator("#annotate-progress")
    # Typed key by key: its "r"s must go into the name, not record judgments.
    name_box.click()
    name_box.press_sequentially("rater r")
    expect(name_box).to_have_value("rater r")
    name_box.press("r")
    name_box.press("Backspace")
    name_box.press("Backspace")
    name_box.press("Backspace")
    expect(name_box).to_have_value("rater")
    page.locator("#annotate-info").click()  # blur: the name is saved in the browser, the view follows
    expect(progress).to_contain_text("judged by rater")
    page.locator("#query-pick input").click()
    page.get_by_role("option", name=f"0/4 judged — {query}", exact=True).click()
    expect(progress).to_have_text("0/4 judged by rater")
    expect(page.locator("#annotate-info")).to_contain_text(query)
    assert labels() == {}, "keys typed into the name box recorded judgments"

    # Keyboard only, focus on the page body (not in a text field).
    page.locator("#annotate-info").click()
    assert page.evaluate("document.activeElement.tagName") not in ("INPUT", "TEXTAREA", "SELECT")
    for done, key in enumerate("rns", start=1):
        judge_key(page, key)
        expect(progress).to_have_text(f"{done}/4 judged by rater")
        expect(page.locator("#query-pick input")).to_have_value(f"{done}/4 judged — {query}")  # the list's count too
    assert sorted(labels("rater").values()) == ["not_relevant", "relevant", "skip"]

    page.reload()  # back on the Annotate tab, by itself (it opened Rank)
    expect(page.locator("#annotate-panel")).to_be_visible()
    expect(page.locator("#rank-button")).not_to_be_visible()
    expect(name_box).to_have_value("rater")
    expect(progress).to_have_text("3/4 judged by rater")
    expect(page.locator("#annotate-info")).to_contain_text(query)
    # Back where the annotator left off: the page they have not judged, not page 1 (a key
    # pressed there would have relabelled a judged page without their noticing).
    expect(page.locator("#annotate-info")).to_contain_text("Page 4 of 4")
    expect(page.locator("#annotate-info")).to_contain_text("current label: Unjudged")

    # "r" typed into the name box after the reload: still text, still three judgments.
    name_box.click()
    name_box.press("End")
    name_box.press("r")
    expect(name_box).to_have_value("raterr")
    name_box.press("Backspace")
    page.locator("#annotate-info").click()
    # A judgment from that "r" would have been sent before this navigation and moved the count.
    info = page.locator("#annotate-info").inner_text()
    page.locator("#nav-prev").click()
    expect(page.locator("#annotate-info")).not_to_have_text(info)
    expect(progress).to_have_text("3/4 judged by rater")
    assert sorted(labels("rater").values()) == ["not_relevant", "relevant", "skip"]
    assert {annotator for annotator, _ in labels()} == {"rater"}
    store.close()
    # Only Annotate is reopened: Evaluate works out its numbers when clicked open.
    page.get_by_role("tab", name="Evaluate", exact=True).click()
    expect(page.locator("#per-query")).to_contain_text(query)  # the tab's own event ran
    page.reload()
    expect(page.locator("#rank-button")).to_be_visible()
    assert page.dialogs == []


def test_judging_without_a_name_warns_and_leaves_the_page_on_screen(page, app_server):
    from gradio_client import Client, handle_file

    from reranker.store import Store

    query = "judging without a name"
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (1, 6)]
    query_id = Client(app_server.url, verbose=False).predict(files=files, query=query, api_name="/rank")["query_id"]
    open_annotate(page)
    page.locator("#query-pick input").click()
    page.get_by_role("option", name=f"0/2 judged — {query}", exact=True).click()
    info = page.locator("#annotate-info")
    expect(info).to_contain_text("Page 1 of 2")
    settled(page, "#annotate-info", "#annotate-progress")
    page.locator("#annotate-info").click()
    judge_key(page, "r")
    expect(page.locator(".toast-body")).to_contain_text("Enter your name (top of the Annotate tab, or annotator in the API) before judging")
    expect(page.locator(".toast-body.warning, .toast-wrap .warning").first).to_be_visible()
    # The page is still there to judge once the name is in: no blank image, no "Error" panels.
    expect(page.locator("#annotate-image img")).to_be_visible()
    expect(info).to_contain_text("Page 1 of 2")
    assert page.locator("#annotate-panel .error").count() == 0
    store = Store(app_server.db_path)
    assert store.current_judgments(query_id=query_id) == []
    store.close()


def test_a_judge_button_clicked_with_the_mouse_is_not_pressed_again_by_space_or_enter(page, app_server):
    """Space scrolls the tall page, Enter is a reflex: neither may press the button the mouse
    clicked last (it kept the focus, and each press judged the next page, unseen)."""
    from gradio_client import Client, handle_file

    query, annotator = "mouse then space query", "mouse rater"
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (1, 3, 5)]
    Client(app_server.url, verbose=False).predict(files=files, query=query, api_name="/rank")
    open_annotate(page)
    name_box, progress = page.locator("#annotator input"), page.locator("#annotate-progress")
    name_box.fill(annotator)
    name_box.press("Enter")  # applies the name, as leaving the box does
    expect(progress).to_contain_text(f"judged by {annotator}")
    page.locator("#query-pick input").click()
    page.get_by_role("option", name=f"0/3 judged — {query}", exact=True).click()
    expect(progress).to_have_text(f"0/3 judged by {annotator}")
    page.locator("#judge-relevant").click()
    expect(progress).to_have_text(f"1/3 judged by {annotator}")
    assert page.evaluate("document.activeElement.closest('#judge-relevant') === null")
    info = page.locator("#annotate-info").inner_text()
    page.keyboard.press("Space")
    page.keyboard.press("Enter")
    page.locator("#nav-prev").click()  # a judgment from those keys would have been sent before this
    expect(page.locator("#annotate-info")).not_to_have_text(info)
    expect(progress).to_have_text(f"1/3 judged by {annotator}")
    assert page.dialogs == []


def test_fast_keyboard_judging_labels_the_page_on_screen_and_skips_none(page, app_server):
    """Keys pressed faster than the server answers: each judgment goes to the page that was on
    screen, none is relabelled, and none is skipped (a press while one is pending is ignored)."""
    from gradio_client import Client, handle_file

    from reranker import ui
    from reranker.store import Store

    query, annotator = "fast keyboard query", "fast rater"
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (0, 2, 4, 6)]
    query_id = Client(app_server.url, verbose=False).predict(files=files, query=query, api_name="/rank")["query_id"]

    open_annotate(page)
    name_box, progress = page.locator("#annotator input"), page.locator("#annotate-progress")
    name_box.fill(annotator)
    page.locator("#annotate-info").click()  # blur: the name is taken
    expect(progress).to_contain_text(f"judged by {annotator}")
    page.locator("#query-pick input").click()
    page.get_by_role("option", name=f"0/4 judged — {query}", exact=True).click()
    expect(progress).to_have_text(f"0/4 judged by {annotator}")
    page.locator("#annotate-info").click()

    for key in "rnrnr":
        page.keyboard.press(key)
        page.wait_for_timeout(30)

    with Store(app_server.db_path) as store:
        # Every answer is in once the count on screen equals the judgments stored, twice running
        # (the first key press is never ignored: at least one judgment).
        shown_pattern = re.compile(rf"(\d+)/4 judged by {re.escape(annotator)}")
        deadline, previous, counts = time.monotonic() + 20, None, None
        while True:
            shown = shown_pattern.fullmatch(progress.inner_text().strip())
            counts = (int(shown[1]) if shown else None, len(store.current_judgments(query_id=query_id, annotator=annotator)))
            if counts[0] == counts[1] >= 1 and counts == previous:
                break
            assert time.monotonic() < deadline, f"(on screen, stored) judgments still {counts} after 20 s"
            previous = counts
            page.wait_for_timeout(500)
        ordered = ui.annotate_tab.page_order(store.query_pages(query_id), ui.annotate_tab.ORDERS[0])
        history = {p.page_hash: store.history(query_id, p.page_hash, annotator) for p in ordered}
    assert all(len(rows) <= 1 for rows in history.values()), "a page was relabelled"
    judged = [i for i, p in enumerate(ordered) if history[p.page_hash]]
    assert judged and judged == list(range(len(judged))), f"pages skipped: judged positions {judged}"
    expect(progress).to_have_text(f"{len(judged)}/4 judged by {annotator}")


def _annotate_in_upload_order(page, app_server, annotator: str, *queries: str) -> list[int]:
    """Rank doc_1, doc_3 and doc_5 under each query (the same three pages), open Annotate under
    `annotator` on the first query in upload order; returns the query ids."""
    from gradio_client import Client, handle_file

    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (1, 3, 5)]
    client = Client(app_server.url, verbose=False)
    ids = [client.predict(files=files, query=query, api_name="/rank")["query_id"] for query in queries]
    open_annotate(page)
    page.locator("#annotator input").fill(annotator)
    page.locator("#annotate-info").click()
    page.locator("#query-pick input").click()
    page.get_by_role("option", name=f"0/3 judged — {queries[0]}", exact=True).click()
    expect(page.locator("#annotate-progress")).to_have_text(f"0/3 judged by {annotator}")
    choose_order(page, "Upload order")
    expect(page.locator("#annotate-info")).to_contain_text("Page 1 of 3 · doc_1.jpg")
    settled(page, "#annotate-info", "#jump", "#query-pick")
    return ids


def _judgments(app_server, query_id: int, annotator: str) -> list[tuple[str, str]]:
    """(source file, label) of the annotator's current judgments on the query."""
    from reranker.store import Store

    with Store(app_server.db_path) as store:
        source = {p.page_hash: p.source for p in store.query_pages(query_id)}
        return [(source[j.page_hash], j.label) for j in store.current_judgments(query_id=query_id, annotator=annotator)]


def test_a_screen_reader_hears_each_page_judged_or_shown_and_each_thumbnail_by_its_caption(page, app_server):
    """Judging and moving changed the screen and nothing was said (no live region anywhere), and
    Gradio named every thumbnail "Thumbnail 1 of 3", hiding its rank, score and file."""
    said = page.locator("#arena-announcer")
    expect(said).to_have_attribute("role", "status")
    # Everything the live region says, in order.
    page.evaluate("""() => { window.heard = []; const region = document.getElementById('arena-announcer');
        new MutationObserver(() => region.textContent && window.heard.push(region.textContent))
            .observe(region, {childList: true, characterData: true, subtree: true}); }""")
    refused = "Upload at least one PDF or image (or click an example). The query is empty: type what you are looking for."
    for _ in range(2):  # nothing uploaded, no query: said, not only shown; and again at the next press
        page.evaluate("window.heard = []; document.getElementById('arena-announcer').textContent = ''")
        page.get_by_role("button", name="Rank", exact=True).click()
        expect(said).to_have_text(refused)
        page.wait_for_timeout(1500)
        assert page.evaluate("window.heard")[-1] == refused
    status = page.locator("#rank-status [data-testid=markdown]")
    for again in (False, True, True):  # a ranking, and the same twice (the status line reads the same): each said when done
        page.evaluate("window.heard = []; document.getElementById('arena-announcer').textContent = ''")
        if again:
            page.get_by_role("button", name="Rank", exact=True).click()
        else:
            rank(page, [str(SAMPLES / f"doc_{n}.jpg") for n in (1, 3)], "screen reader query")
        expect(said).to_have_text(re.compile(r"^Query: screen reader query\s+2 pages, read in [\d.]+ s\.$"))
        expect(status).to_have_text(said.inner_text())  # what was ranked, once done
        heard = page.evaluate("window.heard")  # that it started (if it took a while), then what it did: no timer
        assert all(text == "Ranking…" for text in heard[:-1]), heard
    for gallery in ("#gallery-a", "#gallery-b"):
        thumbnails = page.locator(f"{gallery} button.thumbnail-item")
        expect(thumbnails).to_have_count(2)
        for index in range(2):
            caption = thumbnails.nth(index).locator(".caption-label").inner_text()
            assert CAPTION.match(caption), caption
            expect(thumbnails.nth(index)).to_have_accessible_name(caption)
    # Headings go down one level at a time (the models' headers were h3 under the h1): heading
    # navigation finds them as the page's sections.
    levels = page.evaluate("() => [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')]"
                           ".filter(h => h.offsetParent).map(h => Number(h.tagName[1]))")
    assert levels[0] == 1 and all(after - before <= 1 for before, after in zip(levels, levels[1:])), levels

    (query_id,) = _annotate_in_upload_order(page, app_server, "listener", "screen reader annotate query")
    said = page.locator("#arena-announcer")
    expect(said).to_have_attribute("role", "status")
    expect(said).to_have_text(re.compile(r"^Page 1 of 3 · Unjudged · 0/3 judged · “screen reader annotate query”$"))
    judge_key(page, "r")  # what was recorded, then the next page (which alone sounded the same after R as after N)
    expect(said).to_have_text(re.compile(r"^Page 1 of 3: relevant\. Page 2 of 3 · Unjudged · 1/3 judged · "))
    page.wait_for_function(VIEW_SETTLED)
    page.keyboard.press("ArrowLeft")  # only moved: the page alone
    expect(said).to_have_text(re.compile(r"^Page 1 of 3 · Relevant · 1/3 judged · "))
    assert page.locator("#arena-announcer").bounding_box()["width"] <= 1  # heard, not seen
    page.get_by_role("tab", name="Rank", exact=True).click()
    page.evaluate("document.getElementById('arena-announcer').textContent = ''")
    page.get_by_role("tab", name="Annotate", exact=True).click()  # back: where the annotator is, again
    expect(said).to_have_text(re.compile(r"^Page 1 of 3 · Relevant · 1/3 judged · "))
    judge_key(page, "n")
    expect(said).to_have_text(re.compile(r"^Page 1 of 3: not relevant\. Page 2 of 3 · Unjudged · 1/3 judged · "))
    page.wait_for_function(VIEW_SETTLED)
    page.keyboard.press("u")
    expect(said).to_have_text(re.compile(r"^Undone\. Page 1 of 3 · Relevant · 1/3 judged · "))
    assert _judgments(app_server, query_id, "listener") == [("doc_1.jpg", "relevant")]
    page.wait_for_function(VIEW_SETTLED)
    page.keyboard.press("u")
    expect(said).to_have_text(re.compile(r"^Undone\. Page 1 of 3 · Unjudged · 0/3 judged · "))
    page.wait_for_function(VIEW_SETTLED)
    page.keyboard.press("u")  # nothing left to undo: the message says so, and the next move is only a move
    expect(page.locator(".toast-body")).to_contain_text("Nothing to undo")
    page.keyboard.press("ArrowRight")
    expect(said).to_have_text(re.compile(r"^Page 2 of 3 · Unjudged · 0/3 judged · "))
    # R, then N before R's answer is in: the N is not taken, and what R recorded is still heard.
    judge_key(page, "r")
    page.keyboard.press("n")
    expect(said).to_have_text(re.compile(r"^Page 2 of 3: relevant\. Page 3 of 3 · Unjudged · 1/3 judged · "))
    assert _judgments(app_server, query_id, "listener") == [("doc_3.jpg", "relevant")]


def test_the_judging_keys_can_be_turned_off_and_the_browser_remembers_it(page, app_server):
    """Single-letter keys judged from anywhere on the tab: a screen reader's browse mode or speech
    input, which use letters too, judged pages (WCAG 2.1.4 asks for a way to turn them off)."""
    (query_id,) = _annotate_in_upload_order(page, app_server, "no keys", "shortcuts switch query")
    other_tab = page.context.new_page()  # the app open twice in one browser
    other_tab.goto(page.url)
    expect(other_tab.locator("#shortcuts-on input")).to_be_checked()
    rank_tab = page.context.new_page()  # and a third time, on Rank: its Annotate tab is built when opened
    rank_tab.goto(app_server.url)
    expect(rank_tab.locator("#rank-button")).to_be_visible()
    switch = page.locator("#shortcuts-on input")
    expect(switch).to_be_checked()
    switch.click()
    # The other tab's box follows (it showed the keys on while they were off there too).
    expect(other_tab.locator("#shortcuts-on input")).not_to_be_checked()
    other_tab.close()
    rank_tab.get_by_role("tab", name="Annotate", exact=True).click()
    expect(rank_tab.locator("#shortcuts-on input")).not_to_be_checked()  # it showed the keys on there
    rank_tab.close()
    page.locator("#annotate-info").click()  # the focus off the box: keys would reach the page
    for key in ("r", "n", "s", "ArrowRight"):
        page.keyboard.press(key)
    page.wait_for_timeout(1000)
    expect(page.locator("#annotate-progress")).to_have_text("0/3 judged by no keys")
    expect(page.locator("#annotate-info")).to_contain_text("Page 1 of 3 · doc_1.jpg")
    page.locator("#judge-relevant").click()  # the buttons still judge
    expect(page.locator("#annotate-progress")).to_have_text("1/3 judged by no keys")

    page.reload()
    expect(page.locator("#annotate-progress")).to_have_text("1/3 judged by no keys")
    expect(switch).not_to_be_checked()  # remembered
    page.locator("#annotate-info").click()
    page.keyboard.press("n")
    page.wait_for_timeout(1000)
    expect(page.locator("#annotate-progress")).to_have_text("1/3 judged by no keys")
    switch.click()  # on again
    page.locator("#annotate-info").click()
    judge_key(page, "n")
    expect(page.locator("#annotate-progress")).to_have_text("2/3 judged by no keys")
    assert _judgments(app_server, query_id, "no keys") == [("doc_1.jpg", "relevant"), ("doc_3.jpg", "not_relevant")]


def test_the_keys_switch_holds_in_a_tab_whose_browser_refuses_storage(page, app_server):
    """In a frame sandboxed without same-origin, localStorage throws: the switch cannot be
    remembered, but it still turns the keys off and on in that tab (they stayed on), and none of
    the app's scripts fails. (Only the switch's key is refused here: Gradio's own scripts read
    localStorage unguarded and would fail first.)"""
    page.add_init_script("""for (const name of ['getItem', 'setItem']) {
        const real = Storage.prototype[name];
        Storage.prototype[name] = function (key, ...rest) {
            if (key === 'rerank-arena-shortcuts') throw new DOMException('storage refused by the test', 'SecurityError');
            return real.call(this, key, ...rest);
        };
    }""")
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    (query_id,) = _annotate_in_upload_order(page, app_server, "sandboxed", "refused storage query")
    switch, progress = page.locator("#shortcuts-on input"), page.locator("#annotate-progress")
    expect(switch).to_be_checked()
    switch.click()
    expect(switch).not_to_be_checked()
    page.locator("#annotate-info").click()
    page.wait_for_function(VIEW_SETTLED)
    page.keyboard.press("r")
    page.wait_for_timeout(1000)
    expect(progress).to_have_text("0/3 judged by sandboxed")
    switch.click()
    expect(switch).to_be_checked()
    page.locator("#annotate-info").click()
    judge_key(page, "r")
    expect(progress).to_have_text("1/3 judged by sandboxed")
    assert _judgments(app_server, query_id, "sandboxed") == [("doc_1.jpg", "relevant")]
    assert not [error for error in errors if "storage refused" in error], errors


def test_a_key_pressed_as_another_query_opens_judges_nothing_under_it(page, app_server):
    """Two queries over the same pages. A key pressed just after choosing the second query, with
    the first query's page still on screen, stored that page under the second query."""
    first, second = "switch from this query", "switch to this query"
    _, second_id = _annotate_in_upload_order(page, app_server, "switch rater", first, second)
    info, progress = page.locator("#annotate-info"), page.locator("#annotate-progress")
    page.keyboard.press("ArrowRight")
    expect(info).to_contain_text("Page 2 of 3 · doc_3.jpg")
    settled(page, "#annotate-info", "#jump", "#query-pick")

    cdp = page.context.new_cdp_session(page)  # a slow link: the second query's page comes late
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 400, "downloadThroughput": -1, "uploadThroughput": -1})
    page.locator("#query-pick input").click()
    page.get_by_role("option", name=f"0/3 judged — {second}", exact=True).click()
    page.keyboard.press("r")  # doc_3 of the first query is on screen
    expect(info).to_contain_text(re.compile(rf"{second}\s+Page 1 of 3 · doc_1\.jpg"))
    settled(page, "#annotate-info", "#jump", "#query-pick", "#annotate-progress")
    assert _judgments(app_server, second_id, "switch rater") == []
    cdp.send("Network.emulateNetworkConditions",
             {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    judge_key(page, "r")  # now it judges the page on screen
    expect(progress).to_have_text("1/3 judged by switch rater")
    assert _judgments(app_server, second_id, "switch rater") == [("doc_1.jpg", "relevant")]


def test_keys_and_clicks_while_a_jump_or_an_order_brings_another_page_judge_nothing(page, app_server):
    """A key pressed just after a jump or a new order ran beside the request bringing the next
    page: that view, worked out before the judgment, could arrive last and show the old count
    (and, when the page on screen was kept on the server, the key judged a page nobody saw).
    While a view is on its way the judging keys and buttons do nothing; then they judge the page
    on screen, and the count shown is the count stored."""
    (query_id,) = _annotate_in_upload_order(page, app_server, "jump rater", "jump race query")
    info, progress = page.locator("#annotate-info"), page.locator("#annotate-progress")
    cdp = page.context.new_cdp_session(page)  # a slow link: the next page comes late

    def slow_link(latency_ms: int) -> None:
        cdp.send("Network.emulateNetworkConditions",
                 {"offline": False, "latency": latency_ms, "downloadThroughput": -1, "uploadThroughput": -1})

    cdp.send("Network.enable")
    slow_link(400)
    jump = page.locator("#jump input")
    jump.fill("3")
    jump.press("Enter")
    expect(jump).not_to_be_focused()  # Enter lets go of the box (else the N is typed into it)
    page.keyboard.press("n")  # doc_1, page 1, is on screen
    expect(info).to_contain_text("Page 3 of 3 · doc_5.jpg")
    settled(page, "#annotate-info", "#jump", "#query-pick", "#annotate-progress")
    assert _judgments(app_server, query_id, "jump rater") == []

    choose_order(page, ui_order_other_than("Upload order"))
    page.locator("#judge-relevant").click()  # the mouse, as the order's first page comes
    page.keyboard.press("s")
    settled(page, "#annotate-info", "#jump", "#query-pick", "#annotate-progress")
    expect(progress).to_have_text("0/3 judged by jump rater")
    assert _judgments(app_server, query_id, "jump rater") == []

    slow_link(0)
    on_screen = re.search(r"· (doc_\d\.jpg) ·", info.inner_text()).group(1)
    judge_key(page, "s")  # once the page is in, the key judges it
    expect(progress).to_have_text("1/3 judged by jump rater")
    assert _judgments(app_server, query_id, "jump rater") == [(on_screen, "skip")]


def ui_order_other_than(order: str) -> str:
    from reranker.ui.annotate_tab import ORDERS

    return next(choice for choice in ORDERS if choice != order)


def test_judging_keys_wait_for_the_page_image_to_arrive(page, app_server):
    """After a judgment the text names the next page before its image arrives: a key pressed in
    between labelled a page whose image nobody had seen."""
    (query_id,) = _annotate_in_upload_order(page, app_server, "image rater", "image wait query")
    info, progress = page.locator("#annotate-info"), page.locator("#annotate-progress")
    loaded = "() => { const image = document.querySelector('#annotate-image img'); return image && image.complete; }"
    page.wait_for_function(loaded)
    held = []  # the next page's image is held back until released below
    page.route(re.compile(r"/gradio_api/file="), lambda route: held.append(route))
    page.keyboard.press("r")
    expect(info).to_contain_text("Page 2 of 3 · doc_3.jpg")
    expect(progress).to_have_text("1/3 judged by image rater")
    assert not page.evaluate(loaded)  # doc_1's image is still what the screen shows
    page.keyboard.press("n")
    panel = page.locator("#annotate-panel")
    expect(panel).to_have_class(re.compile(r"\bkey-ignored\b"), timeout=500)  # the page flashes: not taken
    said = page.locator("#arena-announcer")  # and a screen reader says so, then the page on screen again
    expect(said).to_have_text(re.compile(r"^Not taken: (the last key or click is still being carried out|the page's image is still arriving)\.$"))
    expect(said).to_have_text(re.compile(r"^Page 2 of 3 · Unjudged · 1/3 judged · "))
    page.wait_for_timeout(1500)
    expect(progress).to_have_text("1/3 judged by image rater")
    expect(panel).not_to_have_class(re.compile(r"\bkey-ignored\b"))
    # The buttons as the keys: a click (or Enter on a focused button) judged the unseen page.
    page.locator("#judge-not-relevant").click()
    expect(panel).to_have_class(re.compile(r"\bkey-ignored\b"), timeout=500)
    expect(said).to_have_text("Not taken: the page's image is still arriving.")
    page.locator("#judge-skip").focus()
    page.keyboard.press("Enter")
    page.wait_for_timeout(1500)
    expect(progress).to_have_text("1/3 judged by image rater")
    assert _judgments(app_server, query_id, "image rater") == [("doc_1.jpg", "relevant")]
    for route in held:
        route.continue_()
    page.unroute(re.compile(r"/gradio_api/file="))
    page.wait_for_function(loaded)
    page.keyboard.press("n")
    expect(progress).to_have_text("2/3 judged by image rater")
    assert _judgments(app_server, query_id, "image rater") == [("doc_1.jpg", "relevant"), ("doc_3.jpg", "not_relevant")]


def test_after_tab_out_of_the_name_box_the_keys_judge(page, app_server):
    """Tab from the name box lands in the Order list, a read-only box: every key was taken as
    typing there and dropped, without a flash or a word."""
    (query_id,) = _annotate_in_upload_order(page, app_server, "tab rater", "tab query")
    name = page.locator("#annotator input")
    name.click()
    name.press("End")
    page.keyboard.press("Tab")
    expect(page.locator("#annotate-order input")).to_be_focused()
    # Leaving the box applies the name, an event of its own that redraws the page: a key pressed
    # while it runs (or its image comes again) is not taken, and says so. Each press is taken or
    # said not taken, never silently dropped.
    progress, said = page.locator("#annotate-progress"), page.locator("#arena-announcer")
    for _ in range(10):
        said.evaluate("element => { element.textContent = ''; }")
        page.keyboard.press("r")
        page.wait_for_function("""() => document.querySelector('#annotate-progress').innerText.includes('1/3 judged')
                                  || document.querySelector('#arena-announcer').textContent.startsWith('Not taken: ')""")
        if "1/3 judged" in progress.inner_text():
            break
        settled(page, "#annotate-info", "#jump", "#query-pick", "#annotate-progress")
        page.wait_for_function(PAGE_IMAGE_IN)  # a key is not taken while the image arrives either
    expect(progress).to_have_text("1/3 judged by tab rater")
    assert _judgments(app_server, query_id, "tab rater") == [("doc_1.jpg", "relevant")]
    expect(page.locator("#annotate-order input")).not_to_be_focused()  # its list closed, not picking an order


def test_refresh_list_adds_a_query_ranked_meanwhile_and_keeps_the_page_and_the_name(page, app_server):
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (2, 4)]
    client.predict(files=files, query="refresh: the first query", api_name="/rank")
    (query_id,) = _annotate_in_upload_order(page, app_server, "refresh rater", "refresh: the open query")
    judge_key(page, "r")
    progress, info = page.locator("#annotate-progress"), page.locator("#annotate-info")
    expect(progress).to_have_text("1/3 judged by refresh rater")
    settled(page, "#annotate-info", "#annotate-progress")  # else the text read may hold Gradio's "0.0s"
    shown = info.inner_text()
    client.predict(files=files, query="refresh: ranked meanwhile", api_name="/rank")
    page.locator("#refresh-list").click()
    page.locator("#query-pick input").click()
    expect(page.get_by_role("option", name="0/2 judged — refresh: ranked meanwhile", exact=True)).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#query-pick input")).to_have_value("1/3 judged — refresh: the open query")
    expect(progress).to_have_text("1/3 judged by refresh rater")
    # Waited for: the list closed by Escape sends an event of its own (it changes nothing), and
    # while it runs Gradio's timer ("0.0s") shows in the page's text.
    expect(info).to_have_text(shown, use_inner_text=True)


def _judging_two_pages_as(page, app_server, query: str, numbers: tuple[int, int], name: str):
    """A new query of two sample pages, opened on the Annotate tab; `name` typed and Enter pressed."""
    from gradio_client import Client, handle_file

    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in numbers]
    Client(app_server.url, verbose=False).predict(files=files, query=query, api_name="/rank")
    open_annotate(page)
    page.locator("#query-pick input").click()
    page.get_by_role("option", name=re.compile(f" judged — {query}$")).click()
    name_box, progress = page.locator("#annotator input"), page.locator("#annotate-progress")
    name_box.fill(name)
    name_box.press("Enter")
    expect(progress).to_have_text(f"0/2 judged by {name}")
    return name_box, progress


def test_after_enter_in_the_name_box_the_next_key_judges_instead_of_typing(page, app_server):
    """The box kept the focus: an R after "Dana" and Enter made the name "Danar"."""
    name_box, progress = _judging_two_pages_as(page, app_server, "name then keys query", (2, 6), "Dana")
    judge_key(page, "r")
    expect(progress).to_have_text("1/2 judged by Dana")
    expect(name_box).to_have_value("Dana")


def test_a_query_chosen_from_the_list_by_keyboard_opens(page, app_server):
    """Enter in the list sends no `select`: the list named the new query while the old one's page
    stayed on screen, and every key was ignored (the page was not the list's query)."""
    from gradio_client import Client, handle_file

    other = "keyboard pick second query"  # in the list as the page loads
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (5, 7, 9)]
    Client(app_server.url, verbose=False).predict(files=files, query=other, api_name="/rank")
    _, progress = _judging_two_pages_as(page, app_server, "keyboard pick first query", (2, 4), "Gus")
    box = page.locator("#query-pick input")
    box.focus()
    active = page.locator("[role=option].active")
    page.keyboard.press("ArrowDown")  # opens the list
    expect(page.get_by_role("option").first).to_be_visible()
    expect(active).to_have_count(1)
    # Down the list (it wraps) to the new query; opening it may already have moved there.
    for _ in range(page.get_by_role("option").count() + 1):
        before = active.inner_text()
        if other in before:
            break
        page.keyboard.press("ArrowDown")
        expect(active).not_to_have_text(before)  # moved (read at once, it could still be the option before)
    assert other in active.inner_text()
    page.keyboard.press("Enter")
    expect(page.locator("#annotate-info")).to_contain_text(other)
    expect(progress).to_have_text("0/3 judged by Gus")
    judge_key(page, "r")
    expect(progress).to_have_text("1/3 judged by Gus")


def test_q_after_the_last_page_opens_the_next_query_to_judge(page, app_server):
    """A query judged through: Q (or its button) opens the next query down the list with a page
    this annotator has not judged, at its first such page; the keys judge there."""
    from gradio_client import Client, handle_file

    below = "next query: the one below"  # ranked first, so listed under the one judged
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (1, 6, 8)]
    Client(app_server.url, verbose=False).predict(files=files, query=below, api_name="/rank")
    _, progress = _judging_two_pages_as(page, app_server, "next query: judged through", (3, 9), "Quinn")
    judge_key(page, "r")
    judge_key(page, "n")
    expect(progress).to_contain_text("2/2 judged by Quinn · ✓ every page judged")
    page.wait_for_function(VIEW_SETTLED)
    page.keyboard.press("q")
    expect(page.locator("#annotate-info")).to_contain_text(below)
    expect(progress).to_have_text("0/3 judged by Quinn")
    expect(page.locator("#query-pick input")).to_have_value(f"0/3 judged — {below}")
    judge_key(page, "s")
    expect(progress).to_have_text("1/3 judged by Quinn")
    page.wait_for_function(VIEW_SETTLED)
    page.locator("#next-query").click()  # the button does as Q does: the next one down, with nothing judged
    expect(page.locator("#annotate-info")).not_to_contain_text(below)
    expect(progress).to_contain_text("0/")
    assert page.evaluate("document.activeElement.id") != "next-query"  # let go of: Enter would press it again


def _press_as_typed(page, key: str, code: str, repeat: bool = False) -> None:
    """A key as a keyboard sends it: `key` its layout's character, `code` the physical key."""
    cdp = page.context.new_cdp_session(page)
    for kind in ("keyDown", "keyUp"):
        cdp.send("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code, "autoRepeat": repeat,
                                             **({"text": key} if len(key) == 1 and kind == "keyDown" else {})})
    cdp.detach()


def test_after_the_judgment_that_completes_a_query_a_key_waits_for_a_move(page, app_server):
    """The page judged last stayed on screen, or the view went on to a page judged earlier: the
    next key of the rhythm relabelled it, unseen. Also: a Russian layout's R judges (it sent "к"
    and did nothing), a Latin layout's punctuation is no letter, and a held arrow pages on (its
    repeats were dropped)."""
    query_id, = _annotate_in_upload_order(page, app_server, "last page rater", "last page: a key waits")
    info, progress = page.locator("#annotate-info"), page.locator("#annotate-progress")
    page.wait_for_function(VIEW_SETTLED)
    page.wait_for_function(PAGE_IMAGE_IN)
    _press_as_typed(page, "'", "KeyN")  # punctuation where a US keyboard has N (BÉPO): no shortcut
    page.wait_for_timeout(300)
    page.wait_for_function(VIEW_SETTLED)
    _press_as_typed(page, "к", "KeyR")  # R on a Russian layout
    expect(progress).to_contain_text("1/3 judged")
    expect(info).to_contain_text("Page 2 of 3 · doc_3.jpg")
    page.wait_for_function(VIEW_SETTLED)
    page.keyboard.press("ArrowRight")  # page 2 passed over
    expect(info).to_contain_text("Page 3 of 3 · doc_5.jpg")
    judge_key(page, "n")
    expect(info).to_contain_text("Page 2 of 3 · doc_3.jpg")  # back to the page passed over
    judge_key(page, "r")
    expect(progress).to_contain_text("3/3 judged by last page rater · ✓ every page judged: Q opens the next query")
    expect(info).to_contain_text("Page 2 of 3 · doc_3.jpg")  # stays on the page just judged
    judge_key(page, "n")  # the rhythm's next key: not taken
    expect(page.locator(".toast-body")).to_contain_text("Every page of this query is judged, so nothing was recorded")
    assert sorted(_judgments(app_server, query_id, "last page rater")) == [
        ("doc_1.jpg", "relevant"), ("doc_3.jpg", "relevant"), ("doc_5.jpg", "not_relevant")]
    page.wait_for_function(VIEW_SETTLED)
    _press_as_typed(page, "ArrowRight", "ArrowRight")
    expect(info).to_contain_text("Page 3 of 3 · doc_5.jpg")
    page.wait_for_function(VIEW_SETTLED)
    _press_as_typed(page, "ArrowLeft", "ArrowLeft")
    expect(info).to_contain_text("Page 2 of 3 · doc_3.jpg")
    page.wait_for_function(VIEW_SETTLED)
    _press_as_typed(page, "ArrowLeft", "ArrowLeft", repeat=True)  # held down: it pages on
    expect(info).to_contain_text("Page 1 of 3 · doc_1.jpg")
    judge_key(page, "n")  # once moved, a key changes the label of the page shown
    expect(progress).to_contain_text("3/3 judged")
    page.wait_for_function(VIEW_SETTLED)
    assert sorted(_judgments(app_server, query_id, "last page rater")) == [
        ("doc_1.jpg", "not_relevant"), ("doc_3.jpg", "relevant"), ("doc_5.jpg", "not_relevant")]


def test_a_key_in_a_tab_showing_a_label_changed_in_another_tab_records_nothing_and_shows_it(page, app_server):
    """Two tabs of one annotator: the second still showed a page as unjudged after the first
    labelled it, and a key there replaced that label without a word; coming back to it did not
    redraw it."""
    query_id, = _annotate_in_upload_order(page, app_server, "two tabs rater", "two tabs: one label")
    other = page.context.new_page()
    other.goto(app_server.url + "?tab=annotate")
    expect(other.locator("#annotate-info")).to_contain_text("two tabs: one label")
    info, progress = page.locator("#annotate-info"), page.locator("#annotate-progress")
    expect(info).to_contain_text("Page 1 of 3 · doc_1.jpg · current label: Unjudged")
    choose_order(other, "Upload order")  # the name and query are the browser's remembered ones
    expect(other.locator("#annotate-info")).to_contain_text("Page 1 of 3 · doc_1.jpg · current label: Unjudged")
    other.wait_for_function(VIEW_SETTLED)
    other.wait_for_function(PAGE_IMAGE_IN)
    other.locator("#annotate-info").click()
    other.keyboard.press("r")
    expect(other.locator("#annotate-progress")).to_contain_text("1/3 judged by two tabs rater")
    page.bring_to_front()
    page.locator("#annotate-info").click()
    judge_key(page, "n")  # this tab still shows the page unjudged
    expect(page.locator(".toast-body")).to_contain_text(
        "This page's label was changed meanwhile, in another tab or window, to Relevant: nothing was recorded")
    expect(info).to_contain_text("Page 1 of 3 · doc_1.jpg · current label: Relevant")
    expect(progress).to_contain_text("1/3 judged by two tabs rater")
    assert _judgments(app_server, query_id, "two tabs rater") == [("doc_1.jpg", "relevant")]
    judge_key(page, "n")  # seen now: the key changes it
    expect(progress).to_contain_text("1/3 judged by two tabs rater")
    expect(info).to_contain_text("Page 2 of 3 · doc_3.jpg")
    assert _judgments(app_server, query_id, "two tabs rater") == [("doc_1.jpg", "not_relevant")]
    # Come back to, a tab shows the page and the count as they are now, without a key.
    other.bring_to_front()
    expect(other.locator("#annotate-info")).to_contain_text("Page 2 of 3 · doc_3.jpg")
    other.wait_for_function(VIEW_SETTLED)
    other.keyboard.press("s")
    expect(other.locator("#annotate-progress")).to_contain_text("2/3 judged by two tabs rater")  # its count is current
    page.bring_to_front()
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # as the browser's tab is chosen again
    expect(info).to_contain_text("Page 2 of 3 · doc_3.jpg · current label: Skipped")
    expect(progress).to_contain_text("2/3 judged by two tabs rater")


def test_a_list_closed_with_escape_gives_the_keys_back(page, app_server):
    """Its box kept the focus: an N did nothing and an R went into it as a filter."""
    query = "escape then keys query"
    _, progress = _judging_two_pages_as(page, app_server, query, (3, 7), "Eve")
    for box in ("#query-pick input", "#annotate-order input"):
        page.locator(box).click()
        expect(page.get_by_role("option").first).to_be_visible()
        page.keyboard.press("Escape")
        expect(page.get_by_role("option")).to_have_count(0)
    judge_key(page, "n")
    expect(progress).to_have_text("1/2 judged by Eve")
    judge_key(page, "r")
    expect(progress).to_contain_text("2/2 judged by Eve")
    expect(page.locator("#query-pick input")).to_have_value(re.compile(f"{query}$"))


def test_a_list_tabbed_through_closes_and_a_list_still_takes_a_choice(page, app_server):
    """Gradio left a list open once Tab had moved the focus past its box: the Order and Query
    lists, tabbed through, stayed open over the page's label and the refresh button."""
    from reranker.documents import load_files
    from reranker.store import Store

    with Store(app_server.db_path) as store:  # a list long enough to scroll: Tab went into it, and it stayed open
        pages = load_files([str(SAMPLES / "doc_0.jpg")]).pages
        for n in range(30):
            store.save_ranking(f"a question among many {n}", None, pages)
    query = "tab through lists query"
    _, progress = _judging_two_pages_as(page, app_server, query, (2, 6), "Tab")
    page.locator("#annotate-order input").focus()
    expect(page.get_by_role("option").first).to_be_visible()  # a list opens as its box takes the focus
    page.keyboard.press("Tab")  # to the Query list: its own opens, the Order's closes
    expect(page.locator("#query-pick input")).to_be_focused()
    page.keyboard.press("Tab")  # past both
    expect(page.locator("#annotate-order [role=option]")).to_have_count(0)
    expect(page.locator("#query-pick [role=option]")).to_have_count(0)
    expect(page.get_by_role("option")).to_have_count(0)
    from reranker.ui.annotate_tab import ORDERS

    page.locator("#annotate-order input").click()  # a choice with the mouse still counts
    page.get_by_role("option", name=ORDERS[3], exact=True).click()
    expect(page.locator("#annotate-order input")).to_have_value(ORDERS[3])
    expect(page.get_by_role("option")).to_have_count(0)
    judge_key(page, "n")  # and the keys judge
    expect(progress).to_contain_text("1/2 judged by Tab")


def test_shortcuts_work_after_choosing_an_order_and_a_jump_past_the_end_goes_to_the_last_page(page, app_server):
    from gradio_client import Client, handle_file

    from reranker.store import Store

    query, annotator = "order and jump query", "order rater"
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (1, 3, 5)]
    query_id = Client(app_server.url, verbose=False).predict(files=files, query=query, api_name="/rank")["query_id"]
    open_annotate(page)
    name_box, progress, info = page.locator("#annotator input"), page.locator("#annotate-progress"), page.locator("#annotate-info")
    name_box.fill(annotator)
    info.click()
    page.locator("#query-pick input").click()
    page.get_by_role("option", name=f"0/3 judged — {query}", exact=True).click()
    expect(progress).to_have_text(f"0/3 judged by {annotator}")

    jump = page.locator("#jump input")
    choose_order(page, "Upload order")  # the keys judge straight after
    expect(info).to_contain_text("Page 1 of 3 · doc_1.jpg")
    judge_key(page, "r")
    expect(progress).to_have_text(f"1/3 judged by {annotator}")
    expect(jump).to_have_value("2")  # on to the next page: every update of the judgment is in
    with Store(app_server.db_path) as store:
        first = store.query_pages(query_id)[0]  # upload order
        assert [(j.page_hash, j.label) for j in store.current_judgments(query_id=query_id, annotator=annotator)] == [
            (first.page_hash, "relevant")]

    settled(page, "#annotate-info", "#jump", "#query-pick")  # else a late page view can overwrite the typed number
    # The box then shows the page's number: what was typed is rounded and clamped.
    for typed, shown in (("11", "Page 3 of 3"), ("0", "Page 1 of 3"), ("1.6", "Page 2 of 3"), ("2.7", "Page 3 of 3"),
                         ("2", "Page 2 of 3")):
        jump.fill(typed)
        jump.press("Enter")
        expect(info).to_contain_text(shown)
        expect(page.locator("#jump input")).to_have_value(shown.split()[1])
    # Opening the query list to read its counts and closing it without a choice keeps the page
    # (page 3; the first page this annotator has not judged is page 2).
    jump.fill("3")
    jump.press("Enter")
    expect(info).to_contain_text("Page 3 of 3")
    page.locator("#query-pick input").click()
    expect(page.get_by_role("option").first).to_be_visible()
    page.mouse.click(5, 5)  # outside the list (a long list covers the page image)
    expect(page.get_by_role("option")).to_have_count(0)  # closed: an event it set off has started by now
    settled(page, "#annotate-info", "#jump", "#query-pick")
    expect(info).to_contain_text("Page 3 of 3")
    jump.fill("2")
    jump.press("Enter")
    expect(info).to_contain_text("Page 2 of 3")
    # Straight after a jump the keys judge: Enter took the focus out of the number box.
    expect(jump).not_to_be_focused()
    judge_key(page, "n")
    expect(progress).to_have_text(f"2/3 judged by {annotator}")
    with Store(app_server.db_path) as store:
        second = store.query_pages(query_id)[1]
        assert (second.page_hash, "not_relevant") in [(j.page_hash, j.label) for j in store.current_judgments(
            query_id=query_id, annotator=annotator)]
    expect(page.locator(".toast-body")).to_have_count(0)  # no error
    # The order is remembered: a reload reopens the first unjudged page in upload order.
    open_annotate(page)
    expect(page.locator("#annotate-order input")).to_have_value("Upload order")
    expect(info).to_contain_text("Page 3 of 3 · doc_5.jpg")


def test_export_preview_works_with_the_boxes_as_the_page_loads_them(page):
    """What the browser sends for untouched boxes (an empty Number arrives as 0) is valid."""
    page.get_by_role("tab", name="Export", exact=True).click()
    for fmt in ("pointwise", "sentence-transformers"):
        page.get_by_label(fmt, exact=True).click()
        page.get_by_role("button", name="Preview", exact=True).click()
        expect(page.get_by_text(re.compile(f"^{fmt}: \\d+ rows? from \\d+ quer(y|ies)"))).to_be_visible()
    expect(page.locator(".toast-body")).to_have_count(0)  # no error


def test_export_and_evaluate_follow_new_judgments_and_choices_without_a_button(page, app_server):
    """The Export preview kept counts from before the latest judgments (and of the format before),
    and Evaluate kept the last labels' numbers under a new choice of labels, until pressed."""
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (3, 8)]
    ranked = client.predict(files=files, query="fresh counts query", api_name="/rank")

    def judge(annotator, number, label):
        client.predict(query_id=ranked["query_id"], page_hash=ranked["pages"][number]["content_hash"],
                       annotator=annotator, label=label, api_name="/judge")

    judge("fresh one", 0, "relevant")
    page.get_by_role("tab", name="Export", exact=True).click()
    summary = page.locator("#export-summary")
    expect(summary).to_contain_text("pointwise:")  # counted on opening the tab
    before = summary.inner_text()
    page.get_by_label("flagembedding", exact=True).click()
    expect(summary).to_contain_text("flagembedding:")
    page.get_by_label("pointwise", exact=True).click()
    expect(summary).to_have_text(before)
    judge("fresh one", 1, "not_relevant")
    page.get_by_role("tab", name="Rank", exact=True).click()
    page.get_by_role("tab", name="Export", exact=True).click()
    expect(summary).not_to_have_text(before)  # one more negative, counted

    other = client.predict(files=[handle_file(str(SAMPLES / "doc_6.jpg"))], query="someone else's query", api_name="/rank")
    client.predict(query_id=other["query_id"], page_hash=other["pages"][0]["content_hash"], annotator="fresh two",
                   label="relevant", api_name="/judge")
    page.get_by_role("tab", name="Evaluate", exact=True).click()
    per_query = page.locator("#per-query")
    expect(per_query).to_contain_text("someone else's query")  # the majority vote: everyone's labels
    page.locator("#eval-labels input").click()
    page.get_by_role("option", name="fresh one", exact=True).click()
    expect(per_query).not_to_contain_text("someone else's query")  # fresh one's labels alone
    expect(per_query).to_contain_text("fresh counts query")
    # The scores-by-label plot follows the labels too: a point per page fresh one judged.
    points = page.locator("#scores-by-label [aria-roledescription=point]")
    expect(points).to_have_count(2)
    # Each point stands out from the plot by 3:1 or more (Vega's thin outlines at 70% opacity did
    # not), in either scheme; a screen reader reads its values and label.
    assert_points_stand_out(page, points)
    for point in points.all():
        assert re.search(r"judgment: (Relevant|Not relevant); page: doc_\d\.jpg", point.get_attribute("aria-label"))
    # With the dashed line where both models agree, drawn once the tab shows the plot, and
    # there again after a visit to another tab.
    expect(page.locator("#scores-by-label .arena-diagonal")).to_be_visible()
    assert_diagonal_is_y_equals_x(page.locator("#scores-by-label"))
    page.get_by_role("tab", name="Rank", exact=True).click()
    expect(page.locator("#rank-button")).to_be_visible()
    page.get_by_role("tab", name="Evaluate", exact=True).click()
    expect(page.locator("#scores-by-label .arena-diagonal")).to_be_visible()
    assert_diagonal_is_y_equals_x(page.locator("#scores-by-label"))


def test_a_mistake_chosen_in_evaluate_opens_in_annotate_at_that_page_to_relabel(page, app_server):
    """A model's mistake may be the label's: the page chosen in a mistake gallery opens in
    Annotate, on its query and at that page, where a key relabels it; a query chosen in the
    per-query table opens as the list opens it. The address then opens Annotate."""
    from gradio_client import Client, handle_file

    from reranker.store import Store

    query = "a mistake to look at again"
    client = Client(app_server.url, verbose=False)
    ranked = client.predict(files=[handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (2, 5, 9)], query=query,
                            api_name="/rank")
    ranking = ranked["models"]["qwen3-vl-reranker-2b"]["ranking"]
    for entry in ranking:  # the page ranked last is the relevant one: the two above it are mistakes
        label = "relevant" if entry is ranking[-1] else "not_relevant"
        client.predict(query_id=ranked["query_id"], page_hash=entry["content_hash"], annotator="Mia", label=label,
                       api_name="/judge")
    open_annotate(page)
    name_box = page.locator("#annotator input")
    name_box.fill("Mia")
    name_box.press("Enter")
    expect(page.locator("#annotate-progress")).to_contain_text("judged by Mia")

    page.get_by_role("tab", name="Evaluate", exact=True).click()
    page.locator("#eval-labels input").click()
    page.get_by_role("option", name="Mia", exact=True).click()
    first = page.locator("#mistakes-a .thumbnail-item").filter(has_text=f"#1 · {ranking[0]['source']} · for “{query}”")
    expect(first).to_have_count(1)
    expect(page.locator("#open-in-annotate")).to_be_disabled()
    first.click()
    expect(page.locator("#eval-chosen")).to_contain_text(f"Chosen: {ranking[0]['source']}, #1 by ")
    page.keyboard.press("Escape")  # the preview closed: nothing is chosen any more
    expect(page.locator("#open-in-annotate")).to_be_disabled()
    expect(page.locator("#eval-chosen")).to_contain_text("Choose a query in the table above or a page")
    first.click()
    expect(page.locator("#eval-chosen")).to_contain_text(f"Chosen: {ranking[0]['source']}, #1 by ")
    page.locator("#open-in-annotate").click()

    info = page.locator("#annotate-info")
    expect(page.locator("#annotate-panel")).to_be_visible()
    expect(info).to_contain_text(query)
    expect(info).to_contain_text(f"{ranking[0]['source']} · current label: Not relevant")
    expect(page.locator("#query-pick input")).to_have_value(f"3/3 judged — {query}")
    judge_key(page, "r")  # relabelled: the model was right
    # Every page is judged: the page stays on screen with its new label (the view went on to the
    # next page, judged earlier, where the next key of the rhythm relabelled it unseen).
    expect(info).to_contain_text(f"{ranking[0]['source']} · current label: Relevant")
    expect(page.locator("#annotate-progress")).to_contain_text("3/3 judged by Mia · ✓ every page judged: Q opens")
    store = Store(app_server.db_path)
    assert store.current_labels(ranked["query_id"], "Mia")[ranking[0]["content_hash"]] == "relevant"
    store.close()

    # A query chosen in the per-query table opens too (where Mia left it: every page judged, the first).
    page.get_by_role("tab", name="Rank", exact=True).click()
    page.get_by_role("tab", name="Evaluate", exact=True).click()
    expect(page.locator("#open-in-annotate")).to_be_disabled()  # evaluated again: nothing chosen
    page.locator("#per-query").get_by_role("gridcell").filter(has_text=query).first.click()
    expect(page.locator("#eval-chosen")).to_have_text(f"Chosen: “{query}”, 3 pages")
    page.locator("#open-in-annotate").focus()
    page.keyboard.press("Enter")  # from the keyboard: the focus follows to Annotate (it fell to the page's end)
    expect(info).to_contain_text("Page 1 of 3")
    expect(page.get_by_role("tab", name="Annotate", exact=True)).to_be_focused()
    expect(info).to_contain_text(query)
    expect(page).to_have_url(re.compile(r"\?tab=annotate$"))  # opened by the app, Annotate is in the address too
    page.goto(app_server.url.rstrip("/") + "/?tab=annotate")  # as a bookmark: Annotate, where Mia is
    expect(page.locator("#annotate-panel")).to_be_visible()
    expect(page.locator("#annotate-progress")).to_contain_text("judged by Mia")
    page.goto(app_server.url.rstrip("/") + "/?tab=evaluate&keep=1")  # another tab: Rank, and the address says so
    expect(page.locator("#rank-button")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/\?keep=1$"))


def test_export_shows_the_counts_of_the_file_it_made_and_offers_none_after_a_failure(page, app_server):
    """After Export the counts are the file's, not a preview of other options; a failed export
    leaves no earlier file on offer; a bad number names its box."""
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    files = [handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (2, 4)]
    ranked = client.predict(files=files, query="export counts query", api_name="/rank")
    for page_data, label in zip(ranked["pages"], ("relevant", "not_relevant")):
        client.predict(query_id=ranked["query_id"], page_hash=page_data["content_hash"], annotator="exporter",
                       label=label, api_name="/judge")
    page.get_by_role("tab", name="Export", exact=True).click()
    summary, download = page.locator("#export-summary"), page.locator("#export-download")
    page.get_by_label("parquet", exact=True).click()
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(summary).to_contain_text("parquet:")
    page.get_by_label("sentence-transformers", exact=True).click()
    page.get_by_role("button", name="Export", exact=True).click()
    expect(download).to_contain_text("arena-sentence-transformers")
    expect(summary).to_contain_text("sentence-transformers:")
    expect(summary).not_to_contain_text("parquet:")
    # A screen reader hears the file offered (Gradio changes the box without a word).
    expect(page.locator("#arena-announcer")).to_have_text(re.compile(r"^Export ready: arena-sentence-transformers\S*\.zip"))
    # Another option: the file offered was made with the old ones, so it goes.
    page.get_by_label("pointwise", exact=True).click()
    expect(summary).to_contain_text("pointwise:")
    expect(download).not_to_contain_text("arena-sentence-transformers")
    page.get_by_label("sentence-transformers", exact=True).click()
    page.get_by_role("button", name="Export", exact=True).click()
    expect(download).to_contain_text("arena-sentence-transformers")
    # A date shortened by Backspace, or emptied by Delete (the box sends no `input` then): it goes too.
    until = page.get_by_label("Judged until (YYYY-MM-DD, UTC)")
    for keys in (["End", "Backspace"], ["ControlOrMeta+a", "Delete"]):
        until.fill("2099-12-31")
        page.get_by_role("button", name="Export", exact=True).click()
        expect(download).to_contain_text("arena-sentence-transformers")
        settled(page, "#export-download", "#export-summary")
        for key in keys:
            until.press(key)
        page.get_by_label("Judged since (YYYY-MM-DD, UTC)").click()  # out of the box
        expect(download).not_to_contain_text("arena-sentence-transformers")
    until.fill("")
    page.get_by_role("button", name="Export", exact=True).click()
    expect(download).to_contain_text("arena-sentence-transformers")

    labels = page.locator("#export-labels input")
    labels.click()  # who judged is on the list, as on Evaluate's
    expect(page.get_by_role("option", name="exporter", exact=True)).to_be_visible()
    labels.fill("nobody")  # a name not on it can still be typed
    labels.press("Enter")
    expect(summary).to_contain_text("no judgments by 'nobody'")  # previewed on the choice
    page.get_by_role("button", name="Export", exact=True).click()
    expect(summary).to_contain_text("no judgments by 'nobody'")
    expect(download).not_to_contain_text("arena-sentence-transformers")
    expect(page.locator("#arena-announcer")).to_contain_text("no judgments by 'nobody'")  # heard as well as shown
    # Said once, in the box above: no toast repeating it, no red "Error" left in the Download box.
    settled(page, "#export-download")
    expect(page.locator(".toast-body")).to_have_count(0)
    expect(download).not_to_contain_text("Error")
    labels.click()
    page.get_by_role("option", name="Majority vote", exact=True).click()
    expect(summary).to_contain_text("sentence-transformers:")
    page.get_by_label("Max negatives per query").fill("-1")
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(summary).to_contain_text("Max negatives per query (max_negatives) must be a whole number of at least 0 (got -1")
    page.get_by_label("Max negatives per query").fill("2.5")  # the box rounded it to 2, silently
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(summary).to_contain_text("Max negatives per query (max_negatives) must be a whole number of at least 0 (got 2.5")

    # Someone who judged after the page loaded is a Labels choice as soon as the tab opens.
    page.get_by_role("tab", name="Evaluate", exact=True).click()
    expect(page.locator("#eval-labels input")).to_have_value("Majority vote")  # its value is empty
    page.locator("#eval-labels input").click()
    expect(page.get_by_role("option", name="exporter", exact=True)).to_be_visible()
    page.get_by_role("option", name="exporter", exact=True).click()
    page.get_by_role("button", name="Evaluate", exact=True).click()
    # Nothing the researcher reads is cut off by its box at 1400 px: the plot's legend (the box
    # clipped it, leaving its title alone), and every metric of the per-query table (one line of
    # the query was wider than the window).
    legend = page.locator("#metrics-plot .role-legend-label")
    expect(legend).to_have_count(2)
    headers = page.locator("#per-query th")
    expect(headers.first).to_have_attribute("title", "query")
    for element in (*legend.all(), page.locator("#per-query th[title=map]")):
        assert element.evaluate(UNCLIPPED), element.inner_text()
    # A name nobody judges under: the numbers stay, and the line above them says whose they are
    # (once the toast had gone, they stood under the name refused).
    page.locator("#eval-labels input").fill("nobody & co")
    page.locator("#eval-labels input").press("Enter")
    expect(page.locator("#eval-headline")).to_have_text(re.compile(
        r"no judgments by 'nobody & co' \(annotators: .*\)\. The numbers below are still exporter's\."))


def test_the_guidelines_box_shows_what_was_saved_after_start_up_and_saves_no_edit_over_a_newer_version(page, app_server):
    """Read on each page load: a box filled once at start-up would show stale guidelines, and
    its Save would write them back over a colleague's. A colleague's save after the page loaded
    is caught by the version the box was loaded with."""
    saved = "Saved after start-up: a page is relevant when it shows the table itself."
    from reranker.store import Store

    with Store(app_server.db_path) as store:  # another process (a colleague's app) saves them
        store.save_guidelines(saved, "lead")
    page.reload()
    page.get_by_role("tab", name="Annotate", exact=True).click()
    page.get_by_text("Guidelines (what counts as relevant)").click()
    box = page.locator("#guidelines textarea")
    expect(box).to_have_value(saved)
    expect(page.locator("#guidelines-saved")).to_contain_text("Saved by lead on ")

    name = page.locator("#annotator input, #annotator textarea").first
    name.fill("gwen")
    name.press("Enter")
    box.fill(saved + " Charts count when their numbers answer the query.")
    page.get_by_role("button", name="Save guidelines", exact=True).click()
    expect(page.locator("#guidelines-saved")).to_contain_text("Saved by gwen on ")
    with Store(app_server.db_path) as store:
        assert (store.guidelines().author, store.guidelines().text) == ("gwen", box.input_value())
        # While this page is open; lines and a list, which the version shown to merge keeps
        # (its single line breaks ran together).
        store.save_guidelines(newer := "A colleague's newer version.\nTables count.\n===\n\n1. charts too\n- captions alone do not",
                              "lead")
    box.fill("gwen's second edit, of her own version")
    page.get_by_role("button", name="Save guidelines", exact=True).click()
    expect(page.locator(".toast-body.warning")).to_contain_text("Not saved: other guidelines were saved by lead on")
    expect(box).to_have_value("gwen's second edit, of her own version")  # still there to merge
    # The line under the box shows that newer version to merge, with no error badge drawn over it.
    line = page.locator("#guidelines-saved")
    expect(line).to_contain_text("Not saved: newer guidelines came in after you loaded the page (Saved by lead on ")
    assert line.locator("blockquote").inner_text().strip() == newer
    settled(page, "#guidelines-saved")
    expect(line).not_to_contain_text("Error")
    with Store(app_server.db_path) as store:
        assert store.guidelines().text == newer
    # Merged and saved again: an edit of their version now, so it is saved.
    box.fill("A colleague's newer version. gwen's second edit.")
    page.get_by_role("button", name="Save guidelines", exact=True).click()
    expect(line).to_contain_text("Saved by gwen on ")
    with Store(app_server.db_path) as store:
        assert (store.guidelines().author, store.guidelines().text) == ("gwen", "A colleague's newer version. gwen's second edit.")


# Text cut off on the right: past the window's edge, or past the edge of a box that clips it or
# scrolls it (a radio choice's long word ran out of its block at phone width, which then scrolled
# sideways). Only the tables are meant to scroll sideways.
CUT_OFF_ON_THE_RIGHT = """() => {
    const SIDEWAYS = '#metrics-table, #differences-table, #per-query';
    const cut = [], walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
        if (!text.textContent.trim()) continue;
        const range = document.createRange();
        range.selectNodeContents(text);
        const box = range.getBoundingClientRect();
        if (!box.width || !box.height) continue;
        let limit = window.innerWidth, scrolls = false, hidden = false;
        for (let outer = text.parentElement; outer && !scrolls; outer = outer.parentElement) {
            const x = getComputedStyle(outer).overflowX;
            if (x === 'visible') continue;
            if (x === 'auto' || x === 'scroll')
                scrolls = outer.scrollWidth > outer.clientWidth && outer.closest(SIDEWAYS) !== null;
            const clip = outer.getBoundingClientRect();
            hidden ||= clip.width <= 1;  // Gradio's visually hidden copies (the tab bar it measures)
            limit = Math.min(limit, clip.right);
        }
        if (!scrolls && !hidden && box.right > limit + 1)
            cut.push(`"${text.textContent.trim().slice(0, 40)}" ends at ${Math.round(box.right)} px, past ${Math.round(limit)}`);
    }
    return cut;
}"""


def test_at_phone_width_nothing_runs_off_the_screen_and_captions_leave_pages_visible(page, app_server):
    """At 390 px: the Annotate order, Export's rule and check boxes ran off the right edge, the
    Examples table showed a slice of its file-name column, the evaluation galleries' labels hid
    their first row and the bar plot's labels piled up; at any width a caption covered ~40% of
    its thumbnail."""
    from gradio_client import Client, handle_file

    from reranker.ui.rank_tab import examples

    client = Client(app_server.url, verbose=False)
    ranked = client.predict(files=[handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (3, 5, 6)],
                            query="phone width query", api_name="/rank")
    for page_data, label in zip(ranked["pages"], ("relevant", "not_relevant", "not_relevant")):
        client.predict(query_id=ranked["query_id"], page_hash=page_data["content_hash"], annotator="phone",
                       label=label, api_name="/judge")
    page.set_viewport_size({"width": 390, "height": 800})
    page.reload()

    # The examples are labels, each whole (Gradio cuts one past 50 characters mid-word).
    expect(page.locator("#examples button")).to_have_text(examples()[1])
    rank(page, [str(SAMPLES / f"doc_{n}.jpg") for n in (3, 5, 6)], "phone width query")
    page.locator("#gallery-a").scroll_into_view_if_needed()
    for item in page.locator("#gallery-a .thumbnail-item, #gallery-b .thumbnail-item").all():
        image, caption = item.locator("img").bounding_box(), item.locator(".caption-label").bounding_box()
        assert caption["y"] >= image["y"] + image["height"] - 1, (image, caption)  # under the page, not on it
        assert image["height"] >= 0.9 * image["width"]
    first_thumbnail = page.locator("#gallery-a .thumbnail-item").first.bounding_box()
    label = page.locator("#gallery-a > label").bounding_box()
    assert label["y"] + label["height"] <= first_thumbnail["y"] + 1
    # No empty 520 px "Selected page" box between the galleries and the agreement before a click.
    expect(page.locator("#detail-image")).to_be_hidden()
    page.locator("#gallery-a .thumbnail-item").first.click()
    expect(page.locator("#detail-image img")).to_be_visible()
    assert not (cut := page.evaluate(CUT_OFF_ON_THE_RIGHT)), "\n".join(cut)

    page.get_by_role("tab", name="Annotate", exact=True).click()
    expect(page.locator("#annotate-progress")).to_contain_text(" judged")
    assert not (cut := page.evaluate(CUT_OFF_ON_THE_RIGHT)), "\n".join(cut)
    # The buttons come first and the page is shorter: both on one phone screen, a phone browser's
    # ~664 px under its bars (the whole column above the page put 818 px between them); the jump
    # box, the keys switch and the guidelines below the page.
    image, relevant = page.locator("#annotate-image").bounding_box(), page.locator("#judge-relevant").bounding_box()
    assert image["height"] <= 0.5 * 800 + 1 and relevant["y"] < image["y"]
    assert image["y"] + image["height"] - relevant["y"] <= 664, (relevant, image)
    for below in ("#jump", "#shortcuts-on", "#guidelines-accordion"):
        assert page.locator(below).bounding_box()["y"] > image["y"] + image["height"], below
    # The judging buttons are on the first screen (the Order radio's four lines pushed them below).
    page.evaluate("window.scrollTo(0, 0)")
    relevant = page.locator("#judge-relevant").bounding_box()
    assert relevant["y"] + relevant["height"] <= 800, relevant

    page.get_by_role("tab", name="Export", exact=True).click()
    expect(page.get_by_label("above_lowest_positive", exact=True)).to_be_visible()
    page.get_by_label("sentence-transformers", exact=True).click()
    page.get_by_role("button", name="Preview", exact=True).click()
    expect(page.locator("#export-summary")).to_contain_text("negatives/row")  # its explanation wraps
    assert not (cut := page.evaluate(CUT_OFF_ON_THE_RIGHT)), "\n".join(cut)

    page.get_by_role("tab", name="Evaluate", exact=True).click()
    page.get_by_role("button", name="Evaluate", exact=True).click()
    expect(page.locator("#metrics-plot .role-legend-label")).to_have_count(2)
    expect(page.locator("#mistakes-a .thumbnail-item").first).to_be_visible()
    assert not (cut := page.evaluate(CUT_OFF_ON_THE_RIGHT)), "\n".join(cut)
    plot = page.locator("#metrics-plot").bounding_box()
    for legend in page.locator("#metrics-plot .role-legend-label").all():  # in the box, not below it
        box = legend.bounding_box()
        assert plot["y"] <= box["y"] and box["y"] + box["height"] <= plot["y"] + plot["height"]
        assert legend.evaluate(UNCLIPPED), legend.inner_text()  # nor past its right edge
    # The bar plot fits the phone, every bar and label (it scrolled sideways, its labels at 30°
    # piled up over each other at this width).
    chart = page.locator("#metrics-plot svg.marks").bounding_box()
    assert plot["x"] <= chart["x"] and chart["x"] + chart["width"] <= plot["x"] + plot["width"], (plot, chart)
    for label in page.locator("#metrics-plot .role-axis-label text").all():
        assert label.evaluate(UNCLIPPED), label.inner_text()
    for gallery in ("#mistakes-a", "#mistakes-b"):
        label, first = page.locator(f"{gallery} > label").bounding_box(), page.locator(f"{gallery} .thumbnail-item").first.bounding_box()
        assert label["y"] + label["height"] <= first["y"] + 1


def test_the_page_being_judged_fits_a_laptop_screen(page, app_server):
    """A fixed 720 px image box cut a portrait page's bottom off below 1080 px of window height
    (at 1366×768 only 438 px of it showed)."""
    from gradio_client import Client, handle_file

    Client(app_server.url, verbose=False).predict(files=[handle_file(str(SAMPLES / "doc_1.jpg"))],
                                                  query="laptop screen query", api_name="/rank")
    for width, height in ((1366, 768), (1920, 1080)):
        page.set_viewport_size({"width": width, "height": height})
        open_annotate(page)
        expect(page.locator("#annotate-progress")).to_contain_text(" judged")
        page.evaluate("window.scrollTo(0, 0)")
        image = page.locator("#annotate-image").bounding_box()
        assert image["y"] + image["height"] <= height and image["height"] >= 420, (width, height, image)
        label_above_the_page(page, "#annotate-image")
    # Its Fullscreen button fills the window (the height rule above kept it a 400 px strip over
    # the top of the app, the Relevant button under it at 1920×1080).
    page.locator("#annotate-image").hover()
    page.locator("#annotate-image button[aria-label='Fullscreen']").click()
    page.wait_for_function("() => { const box = document.querySelector('#annotate-image').getBoundingClientRect();"
                           " return box.top <= 1 && box.height >= window.innerHeight - 1; }")
    assert page.locator("#annotate-image img").bounding_box()["height"] > 0.8 * 1080


def label_above_the_page(page, box: str) -> None:
    """The image's label ("Page 1 of 10 · …") sits above the page, not over its top (where a
    document has its title), and the page still fits its box."""
    expect(page.locator(f"{box} img")).to_be_visible()
    # Measured together (the page may still be scrolling the box into view).
    label, picture, outer = page.evaluate(
        """(box) => [`${box} > label`, `${box} img`, box].map(
               (selector) => { const r = document.querySelector(selector).getBoundingClientRect();
                               return {y: r.top, height: r.height}; })""", box)
    assert label["y"] + label["height"] <= picture["y"] + 0.5, (label, picture)
    assert picture["y"] + picture["height"] <= outer["y"] + outer["height"] + 0.5, (picture, outer)


def test_on_a_phone_a_tap_on_a_plots_point_shows_its_tooltip_and_a_tap_elsewhere_hides_it(browser, app_server):
    """Vega shows a tooltip on pointermove, which a finger's tap does not send: on a phone no
    point's page or scores could be read (static/plot_taps.js)."""
    from gradio_client import Client, handle_file

    client = Client(app_server.url, verbose=False)
    query = "tapping the plots"
    ranked = client.predict(files=[handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in (0, 7, 8)], query=query, api_name="/rank")
    for page_data, label in zip(ranked["pages"], ("relevant", "not_relevant", "not_relevant")):
        client.predict(ranked["query_id"], page_data["content_hash"], "tapper", label, api_name="/judge")
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    context.set_default_timeout(TIMEOUT_MS)
    context.route(re.compile(r"^(?!https?://127\.0\.0\.1[:/]|data:|blob:)"), lambda route: route.abort())
    page = context.new_page()
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Evaluate", exact=True).tap()
        points = page.locator(f"#scores-by-label [aria-roledescription=point][aria-label$='“{query}”']")
        expect(points).to_have_count(3)
        tooltip = page.locator("#vg-tooltip-element")

        def tap(locator) -> str:
            """Tap the middle of it; what a screen reader says of the mark drawn there, on top
            (another query's point may lie over this one)."""
            locator.scroll_into_view_if_needed()
            box = locator.bounding_box()
            x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
            under = page.evaluate("([x, y]) => document.elementFromPoint(x, y)?.getAttribute('aria-label') || ''", [x, y])
            page.touchscreen.tap(x, y)
            return under

        first = tap(points.nth(0))
        expect(tooltip).to_have_class(re.compile(r"\bvisible\b"))
        expect(tooltip).to_contain_text(first.split("page: ", 1)[1])
        second = tap(points.nth(1))  # wherever the first one's tooltip lies: it lets taps through
        expect(tooltip).to_contain_text(second.split("page: ", 1)[1])
        expect(tooltip).to_have_class(re.compile(r"\bvisible\b"))
        tap(page.locator("#metrics-table"))  # anywhere else
        expect(tooltip).not_to_have_class(re.compile(r"\bvisible\b"))
        # A bar too: its metric and value.
        bar = tap(page.locator("#metrics-plot [aria-roledescription=bar]").first)
        expect(tooltip).to_have_class(re.compile(r"\bvisible\b"))
        expect(tooltip).to_contain_text(re.search(r"value: ([\d.]+)", bar).group(1))
    finally:
        context.close()


class HeldReranker:
    """A tiny reranker whose progress reports wait until the test lets them go: a ranking that
    runs as long as the test needs (a CPU Space's takes minutes)."""

    def __init__(self, inner, gate, held, calls):
        self.inner, self.gate, self.held, self.calls = inner, gate, held, calls

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def score(self, query, pages, instruction=None, *, progress=None, **options):
        self.calls.append((self.inner.spec.key, len(pages)))

        def held_progress(done, total):
            self.held.set()
            self.gate.wait(TIMEOUT_MS / 1000)
            if progress:
                progress(done, total)

        return self.inner.score(query, pages, instruction, progress=held_progress, **options)


@pytest.fixture
def held_app(browser, tiny_rerankers, tmp_path, caplog, request):
    """The app served in this process on rerankers that hold each ranking at its first progress
    report until `gate` is set; (url, arena, gate, held: set once a ranking is held, calls:
    (model, pages) per call of a model) and a browser context on it."""
    import logging
    import threading

    from reranker import ranking, ui
    from reranker.store import Store

    from .app_server import free_port

    gate, held, calls = threading.Event(), threading.Event(), []
    pool = ranking.ModelPool(loader=lambda key: HeldReranker(tiny_rerankers[key], gate, held, calls))
    arena = ui.Arena(pool, Store(tmp_path / "arena.db"), tmp_path / "cache")
    slots = getattr(request, "param", {}).get("rank_concurrency")  # indirect: fewer ranking slots
    if slots:
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setattr(ui.rank_tab, "RANK_CONCURRENCY", slots)
    demo = ui.build_app(arena)
    _, url, _ = demo.launch(**ui.launch_options(arena), prevent_thread_lock=True, server_name="127.0.0.1",
                            server_port=free_port(), quiet=True)
    caplog.set_level(logging.INFO, logger="reranker")
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield SimpleNamespace(url=url, arena=arena, gate=gate, held=held, calls=calls, context=context)
    finally:
        gate.set()
        context.close()
        demo.close()
        for reranker in tiny_rerankers.values():
            reranker.clear_caches()


def start_held_ranking(app, query: str):
    """A page of the app with a ranking of three sample pages held at the first model."""
    page = app.context.new_page()
    page.goto(app.url)
    page.locator("#uploads input[type=file]").set_input_files([str(SAMPLES / f"doc_{n}.jpg") for n in range(3)])
    expect(page.locator("#uploads table, #uploads .file-preview").first).to_be_visible()
    page.locator("#query textarea, #query input").first.fill(query)
    page.get_by_role("button", name="Rank", exact=True).click()
    assert app.held.wait(TIMEOUT_MS / 1000), "the ranking did not reach the model"
    return page


def wait_for(done, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)


def test_closing_the_page_stops_its_ranking_and_nothing_of_it_is_stored(held_app, caplog):
    """It ran every page through both models for nobody, holding the models' one turn (and a
    ranking slot) that every other visitor's ranking waited for."""
    page = start_held_ranking(held_app, "a ranking nobody waits for")
    page.close()
    wait_for(lambda: "ranking(s) under way was closed" in caplog.text, "Gradio's unload")
    held_app.gate.set()
    wait_for(lambda: not len(held_app.arena.rankings), "the ranking's end")
    assert "stopped: the page that asked for it was closed" in caplog.text
    first_model = next(iter(held_app.arena.pool.keys))
    assert held_app.calls == [(first_model, 3)], f"model work after the page closed: {held_app.calls}"
    assert held_app.arena.store.query_count() == 0
    # The same browser comes back: its new page ranks as ever.
    page = held_app.context.new_page()
    page.goto(held_app.url)
    rank(page, [str(SAMPLES / f"doc_{n}.jpg") for n in range(3)], "a ranking someone waits for")
    assert held_app.arena.store.query_count() == 1 and len(held_app.calls) == 3


def test_stop_takes_the_rank_buttons_place_while_a_ranking_runs_and_stops_it(held_app, caplog):
    """On a CPU a ranking takes minutes: a visitor who asked for the wrong pages could only
    wait, or close the page."""
    page = held_app.context.new_page()
    page.goto(held_app.url)
    expect(page.locator("#rank-button")).to_be_visible()
    expect(page.locator("#stop-ranking")).to_be_hidden()
    page.close()
    page = start_held_ranking(held_app, "the wrong question")
    expect(page.locator("#stop-ranking")).to_be_visible()
    expect(page.locator("#rank-button")).to_be_hidden()
    page.locator("#stop-ranking").click()
    wait_for(lambda: "Stop pressed: 1 ranking(s) stop" in caplog.text, "the press of Stop")
    # Until the page under way is scored (on a CPU up to a minute), the button says it heard.
    expect(page.locator("#stop-ranking")).to_have_text("Stopping…")
    expect(page.locator("#stop-ranking")).to_be_disabled()
    held_app.gate.set()
    expect(page.locator("#rank-status")).to_contain_text("Stopped: nothing of this ranking was stored.")
    expect(page.locator("#arena-announcer")).to_contain_text("Stopped: nothing of this ranking was stored.")
    expect(page.locator("#rank-button")).to_be_visible()
    expect(page.locator("#stop-ranking")).to_be_hidden()
    for gallery in ("#gallery-a", "#gallery-b"):
        expect(page.locator(gallery)).not_to_contain_text("Error")
        expect(page.locator(f"{gallery} .thumbnail-item")).to_have_count(0)
    assert page.locator(".toast-body").count() == 0
    assert held_app.calls == [(next(iter(held_app.arena.pool.keys)), 3)] and held_app.arena.store.query_count() == 0
    # Asked again, it ranks, and Stop is ready for it.
    held_app.gate.clear()
    held_app.held.clear()
    page.get_by_role("button", name="Rank", exact=True).click()
    assert held_app.held.wait(TIMEOUT_MS / 1000), "the ranking did not reach the model"
    expect(page.locator("#stop-ranking")).to_have_text("Stop")
    expect(page.locator("#stop-ranking")).to_be_enabled()
    held_app.gate.set()
    for gallery in ("#gallery-a", "#gallery-b"):
        expect(page.locator(f"{gallery} .caption-label").first).to_be_visible(timeout=TIMEOUT_MS)
    assert held_app.arena.store.query_count() == 1



def test_a_ranking_asked_for_from_python_runs_to_its_end_when_its_clients_heartbeat_ends(held_app, caplog, monkeypatch):
    """gradio_client has a session and a heartbeat like a page: its heartbeat's end (the client
    closed or its session reset; a dropped connection) was Gradio's unload, and the ranking its
    script still waited for came back as {"stopped": true}, with nothing stored."""
    from gradio_client import Client, handle_file

    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.5")  # the heartbeat's end is noticed within a second
    client = Client(held_app.url, verbose=False)
    job = client.submit(files=[handle_file(str(SAMPLES / f"doc_{n}.jpg")) for n in range(3)], query="from a script",
                        api_name="/rank")
    assert held_app.held.wait(TIMEOUT_MS / 1000), "the ranking did not reach the model"
    session = client.session_hash
    client.reset_session()  # its heartbeat for the session the ranking was asked in ends
    time.sleep(3)
    assert held_app.arena.rankings.stop(session, "a test") == 0  # nothing of the client's is watched
    held_app.gate.set()
    result = job.result(timeout=TIMEOUT_MS / 1000)
    assert "stopped" not in result and len(result["pages"]) == 3
    assert held_app.arena.store.query_count() == 1 and "was closed: they stop" not in caplog.text


def test_the_keyboard_focus_goes_from_rank_to_stop_and_back_as_they_take_each_others_place(held_app, caplog):
    """Rank pressed from the keyboard hid the focused button: the focus fell to the page's body
    (the next Tab started at the top) and the results no longer took it; Stop alike."""
    page = held_app.context.new_page()
    page.goto(held_app.url)
    page.locator("#uploads input[type=file]").set_input_files([str(SAMPLES / f"doc_{n}.jpg") for n in range(3)])
    expect(page.locator("#uploads table, #uploads .file-preview").first).to_be_visible()
    page.locator("#query textarea, #query input").first.fill("asked from the keyboard")
    page.locator("#rank-button").focus()
    page.keyboard.press("Enter")
    assert held_app.held.wait(TIMEOUT_MS / 1000), "the ranking did not reach the model"
    expect(page.locator("#stop-ranking")).to_be_focused()
    held_app.gate.set()
    expect(page.locator("#gallery-b .caption-label").first).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("#header-a")).to_be_focused()  # as the results of a press of Rank always took it
    # Stop from the keyboard: the focus is back on Rank once the ranking has stopped.
    held_app.gate.clear()
    held_app.held.clear()
    page.locator("#query textarea, #query input").first.fill("stopped from the keyboard")
    page.locator("#rank-button").focus()
    page.keyboard.press("Enter")
    assert held_app.held.wait(TIMEOUT_MS / 1000), "the ranking did not reach the model"
    expect(page.locator("#stop-ranking")).to_be_focused()
    page.keyboard.press("Enter")
    wait_for(lambda: "Stop pressed: 1 ranking(s) stop" in caplog.text, "the press of Stop")
    held_app.gate.set()
    expect(page.locator("#rank-status")).to_contain_text("Stopped: nothing of this ranking was stored.")
    page.wait_for_timeout(1000)  # the steps after the ranking (drawing it) move no focus
    expect(page.locator("#rank-button")).to_be_focused()


@pytest.mark.parametrize("held_app", [{"rank_concurrency": 1}], indirect=True)
def test_stop_reaches_a_ranking_that_waits_in_the_queue_for_a_ranking_slot(held_app, caplog):
    """Behind the rankings that hold every slot (on a busy Space, minutes), the page showed Rank,
    not Stop, and the ranking, once it started, ran to its end."""
    start_held_ranking(held_app, "holds the only slot")
    page = held_app.context.new_page()
    page.goto(held_app.url)
    page.locator("#uploads input[type=file]").set_input_files([str(SAMPLES / f"doc_{n}.jpg") for n in (3, 4)])
    expect(page.locator("#uploads table, #uploads .file-preview").first).to_be_visible()
    page.locator("#query textarea, #query input").first.fill("waits for a slot")
    page.get_by_role("button", name="Rank", exact=True).click()
    expect(page.locator("#rank-status")).to_contain_text("queue: 1/1")
    expect(page.locator("#stop-ranking")).to_be_visible()
    expect(page.locator("#rank-button")).to_be_hidden()
    page.locator("#stop-ranking").click()
    wait_for(lambda: "Stop pressed: 1 ranking(s) stop" in caplog.text, "the press of Stop")
    held_app.gate.set()
    expect(page.locator("#rank-status")).to_contain_text("Stopped: nothing of this ranking was stored.")
    expect(page.locator("#rank-button")).to_be_visible()
    expect(page.locator("#stop-ranking")).to_be_hidden()
    wait_for(lambda: not len(held_app.arena.rankings), "both rankings' end")
    assert held_app.arena.store.query_count() == 1  # the first one's
    assert all(pages == 3 for _, pages in held_app.calls), held_app.calls  # the second never reached a model
