"""What counts as the same text and as no text at all, for queries, instructions and annotator
names alike: one rule for the scoring code, the rankings and the store (which sits below both)."""

from __future__ import annotations

import unicodedata

# Characters that show nothing on their own: controls, format characters (zero-width spaces,
# joiners, BOM), separators, and combining marks with no letter to sit on. (Not str.isprintable:
# it calls a character newer than Python's Unicode tables unprintable, so a query of a new emoji
# was "empty".)
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp", "Mn"})


def is_blank(text: str) -> bool:
    """Nothing to read: only spaces and invisible characters (zero-width spaces, say)."""
    return all(character.isspace() or unicodedata.category(character) in INVISIBLE_CATEGORIES for character in text)


def same_text(text: str) -> str:
    """Text as stored and looked up (queries, instructions, names): Unicode's composed form (NFC),
    so "café" typed as "cafe" + a combining accent is the same query, and "José" the same
    annotator, however the keyboard or platform encoded them. The models' tokenizer normalizes
    to NFC itself: the scores are the same."""
    return unicodedata.normalize("NFC", text)


def not_utf8(text: str) -> str | None:
    """Why `text` cannot be stored or tokenized, or None: a character that is not UTF-8 (Python
    hands a byte of another encoding in a command line over as a lone surrogate, which SQLite
    and the tokenizers refuse with a bare codec error)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        code = ord(text[error.start])
        what = f"the byte 0x{code - 0xDC00:02X}" if 0xDC80 <= code <= 0xDCFF else f"a lone surrogate U+{code:04X}"
        return f"character {error.start + 1} is {what}, not UTF-8 (typed in a terminal or saved in another encoding?)"
    return None
