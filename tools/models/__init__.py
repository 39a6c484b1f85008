"""The tiny-checkpoint builder (build.py) and its tokenizers (tokenizers.py); `python -m tools.models --help`."""
