"""The durable OCR run: the run's bookkeeping and exit code (ocr.py), resume manifests (manifest.py, ledger.py),
output files (outputs.py), job-array shards (shards.py), `vlmcli status` (status.py), and the Ray Data runner
(ray_runner.py, ray_actor.py: Ray is imported only there)."""
