"""Silence library log lines that are noise to vlmcli's users (stdlib only; import before bitsandbytes)."""

import logging

# bitsandbytes logs, at import, its failed attempt to download an optional CPU
# kernel from a hub, and on every 8-bit matmul that it casts inputs.
for _name in ("bitsandbytes.backends.cpu.ops", "bitsandbytes.autograd._functions"):
    logging.getLogger(_name).setLevel(logging.ERROR)
