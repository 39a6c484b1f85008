"""Development tools, run from a checkout (`python -m tools.<name>`); not installed with vlmcli.

- models: the one builder of tiny random-weight checkpoints (test fixtures, the learn-to-read model and the
  SmolVLM-256M stand-in of the benchmarks are three configurations of it);
- synthetic: printed and handwriting-style lines, pages and receipts as `vlmcli finetune` data;
- pdfs: PDFs with a text layer, scanned ones, mixed ones, and printed page labels (tests, retrieval benchmark).
"""
