"""The course as a website: every notebook executed, with its figures, tables and players.

``make book`` (or ``python -m book``) executes the notebooks, makes them ready for a static
page (:mod:`book.notebook`), writes the pages from the README and the other documents
(:mod:`book.pages`), and builds the site with Jupyter Book 1 (:mod:`book.site`) into
``build/book/_build/html``. The tests build the same site from the notebooks their own run
executed, and open it in Chromium (``tests/test_book.py``).

This folder is the project's tooling, not part of the installed ``bsr`` package.
"""
