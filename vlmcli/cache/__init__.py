"""What is kept between runs, outside any output folder: the settings fingerprint that says which run made a
page's text (keys.py; the resume manifest keys pages with it too), and the page cache (store.py): text layers, OCR
text and encoded image features, in one SQLite file in the user's cache folder. No torch here.
"""
