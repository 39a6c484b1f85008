"""The first pass: a classic OCR engine reads a page image into words with boxes, far faster than the model.

engines.py picks the engine (`--first-pass`) and turns its pixels into PDF
points; tesseract.py runs the system binary, rapidocr.py runs RapidOCR in a
child process (rapidocr_worker.py). Like the PDF renderers, every call is a
child process in its own group with a timeout, so an engine that crashes or
hangs costs one page, not the run.
"""
