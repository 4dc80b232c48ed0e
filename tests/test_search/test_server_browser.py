"""The search page in a real headless browser: Debian's Chromium driven by
Playwright (its own browser download cannot run here). Type a query, press
Search, see k results with the searcher's paths and scores; then drop an
image on the page and pick one with the file button. Screenshots go to the
test's tmp_path and their paths are printed (``pytest -rA`` shows them)."""
import base64
import os.path as osp

import pytest
from fake_searcher import FakeSearcher, running_server

CHROMIUM = '/usr/bin/chromium'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
                 '--disable-quic', '--no-first-run',
                 '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']


def sync_playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as err:
        pytest.skip(f'playwright cannot be imported ({err}): pip install '
                    'playwright (requirements/tests.txt)')
    if not osp.exists(CHROMIUM):
        pytest.skip(f'no Chromium at {CHROMIUM}: apt-get install chromium '
                    '(.ci/run does it where it runs as root)')
    return sync_playwright()


@pytest.fixture
def page(tmp_path):
    """A page of a fresh headless Chromium (a new profile in tmp_path)."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / 'chromium-profile'), executable_path=CHROMIUM,
            headless=True, args=CHROMIUM_ARGS,
            viewport=dict(width=1100, height=760))
        context.set_default_timeout(30_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def wait_for_status(page, words: str) -> str:
    """Wait until the page has finished a search whose status line says
    ``words``; returns the status line."""
    page.wait_for_function(
        'words => document.body.dataset.state !== "busy" && '
        'document.getElementById("status").textContent.includes(words)',
        arg=words)
    return page.inner_text('#status')


def shown_hits(page) -> list:
    """``(id, path, similarity text)`` of each result card, in order, once
    every thumbnail has loaded."""
    page.wait_for_function(
        '[...document.querySelectorAll(".hit img")].every('
        'img => img.complete && img.naturalWidth > 0)')
    hits = page.eval_on_selector_all('.hit', '''cards => cards.map(card => [
        Number(card.dataset.id), card.querySelector(".path").title,
        card.querySelector(".score").textContent,
        card.querySelector(".name").textContent])''')
    for _, path, _, name in hits:
        assert name == osp.basename(path)
    return [hit[:3] for hit in hits]


def expected_hits(searcher, data: bytes, k: int) -> list:
    return [[i, path, f'{score:.3f}']
            for i, path, score in searcher.expected(data, k)]


def screenshot(page, path) -> None:
    page.screenshot(path=str(path), full_page=True)
    print(f'screenshot: {path}')


def test_search_page_by_text_drop_and_file(tmp_path, page):
    photos = tmp_path / 'photos'
    photos.mkdir()
    searcher = FakeSearcher(str(photos))
    with running_server(searcher) as url:
        page.goto(url + '/')
        page.wait_for_function('document.getElementById("index")'
                               '.textContent.includes("30 images")')
        assert page.inner_text('#index') == 'fake-photos \u00b7 30 images'

        # Text: type, pick 10 results, press Search.
        page.select_option('#k', '10')
        page.fill('#query', 'a red bicycle')
        page.click('#search')
        status = wait_for_status(page, 'results for')
        assert status.startswith('10 results for \u201ca red bicycle\u201d')
        assert shown_hits(page) == expected_hits(searcher, b'a red bicycle',
                                                 10)
        screenshot(page, tmp_path / 'search_text.png')

        # Drop an image file onto the page.
        with open(searcher.paths[7], 'rb') as f:
            raw = f.read()
        page.evaluate('''([name, data]) => {
            const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
            const transfer = new DataTransfer();
            transfer.items.add(new File([bytes], name, {type: "image/png"}));
            document.body.dispatchEvent(new DragEvent("drop", {
                dataTransfer: transfer, bubbles: true, cancelable: true}));
        }''', ['dropped.png', base64.b64encode(raw).decode()])
        status = wait_for_status(page, 'image dropped.png')
        assert status.startswith('10 results for image dropped.png')
        assert shown_hits(page) == expected_hits(searcher, raw, 10)
        assert page.is_visible('#query-image')
        screenshot(page, tmp_path / 'search_image.png')

        # Pick a file with the button, 20 results.
        page.select_option('#k', '20')
        page.set_input_files('#file', searcher.paths[3])
        wait_for_status(page, 'image photo_003.png')
        with open(searcher.paths[3], 'rb') as f:
            assert shown_hits(page) == expected_hits(searcher, f.read(), 20)

        # The server's error shows on the page; the page goes on working.
        page.fill('#query', '   ')
        page.click('#search')
        assert "'text' is empty" in wait_for_status(page, 'empty')
        assert page.get_attribute('#status', 'class') == 'error'
        page.fill('#query', 'cat')
        page.click('#search')
        wait_for_status(page, '\u201ccat\u201d')
        assert len(shown_hits(page)) == 20
