"""Which encoding names a CSV file may be read in."""

from __future__ import annotations

import codecs


def is_text_encoding(name: str) -> bool:
    """A codec that turns bytes into text. `hex`, `rot13`, `zlib` and the like pass
    `codecs.lookup` but are not text encodings: reading a file with one fails
    half-way with an error no shop owner could act on."""
    try:
        info = codecs.lookup(name)
    except (LookupError, TypeError, ValueError):
        return False
    # CodecInfo marks the bytes-to-bytes and text-to-text codecs (Python >= 3.4).
    return bool(getattr(info, "_is_text_encoding", True))
