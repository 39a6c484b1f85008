"""The durable OCR run: resume manifest (manifest.py), output files (outputs.py), failure report and exit code (ocr.py)."""
