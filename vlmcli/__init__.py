"""vlmcli: read documents with a vision-language model from the terminal."""

__version__ = "0.1.0"
