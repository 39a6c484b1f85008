"""Files → pixels: which pages an input has (documents), decoding them (images; PDFs through pdfs.py: poppler, or
PDFium in a child process), how a page is cut to fit the model (geometry), and the one function that makes a
page's images (pages.page_images).

Nothing here knows the model beyond the longest edge its processor takes.
"""
