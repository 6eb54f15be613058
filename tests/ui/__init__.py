"""The app's view functions (reranker/ui) on a real store and the tiny checkpoints, without a
browser: what each tab shows and does. One file per tab, as in reranker/ui; test_app_start.py:
starting and configuring the app. The browser tests are tests/test_browser.py."""

QUERY = "Which region of the SUC2 frequency plot leads to extinction?"
