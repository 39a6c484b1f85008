"""Pages → text: one page (page.py: prepare, generate, retries), many pages in order (transcribe.py, and
batch.py for several pages per generate call), a question about pages shown together (ask.py), and a question
over whole documents, answered with the page it came from (docqa/).

Plain data in and out (results.py); progress goes through `vlmcli.progress`.
"""
