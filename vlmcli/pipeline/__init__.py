"""Pages → text: one page (page.py: prepare, generate, retries), many pages in order (transcribe.py, and
batch.py for several pages per generate call), and a question about pages (ask.py).

Plain data in and out (results.py); progress goes through `vlmcli.progress`.
"""
