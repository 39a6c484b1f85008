"""Text as the answer checker compares it: words stemmed, numbers as values (pure; PyStemmer, text2num).

`tokens("Payment is due within forty-five (45) days")` and `tokens("45 Days")`
both hold the number 45 followed by the word "day". Folded away: Unicode
compatibility forms, case, dashes and quotes, punctuation, plural endings
(Snowball stems), thousands separators ("4,213" = "4 213" = "4213"), trailing
decimal zeros ("1,250.00" = "1250"), number words ("forty-five" = 45, via
text2num), scale words and suffixes ("9 million" = "9M" = "9,000,000", "2.5bn" = 2500000000;
"m", "k" and "K" only right after a currency sign: "$9m", "$10k", while "9m" is
nine metres), "%" and "per cent" (= "percent"), and currency signs and codes, which
move after their number ("$9 million" = "9 million dollars", "EUR 900" = "900 EUR").
Decimal commas ("12,5") are not read as decimals: "," before three digits groups
thousands, before other counts it separates two numbers.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal

_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")
_QUOTES = {**dict.fromkeys(map(ord, "\u2018\u2019\u201a\u201b\u2032"), "'"),
           **dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033"), '"')}
# Scales become private-use marks before text2num reads the text, so that "9 million" stays 9 x 10^6 and
# "two million" becomes "2 <10^6>", not "2000000" beside a stray "1000000".
_MARKS = {3: "\ue003", 6: "\ue006", 9: "\ue009", 12: "\ue00c"}
_EXPONENTS = {mark: exponent for exponent, mark in _MARKS.items()}
_SCALE_WORDS = {"thousand": 3, "million": 6, "mn": 6, "mln": 6, "billion": 9, "bn": 9, "trillion": 12, "tn": 12}
_CURRENCY_SIGN = "$\u20ac\u00a3\u00a5\u20b9"
_AFTER_DIGITS = re.compile(r"(?<=\d)\s?(thousand|million|mn|mln|billion|bn|trillion|tn)s?\b", re.IGNORECASE)
_GLUED_M = re.compile(r"(?<=\d)M\b")  # "9M": "9m" alone is nine metres
_AFTER_SIGN = re.compile(rf"([{_CURRENCY_SIGN}]\s?\d[\d.,]*)([mkMK])\b")  # "$9m", "$10k"
_ALONE = re.compile(r"\b(?:(million|billion|trillion)s?|(thousand)s)\b", re.IGNORECASE)  # "two million", "thousands"
_PER_CENT = re.compile(r"\bper\s?cent\b|\bpct\b", re.IGNORECASE)
_TOKEN = re.compile(
    rf"(?P<sign>[{_CURRENCY_SIGN}])"
    r"|(?<![\w.])(?P<digits>\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?: \d{3})+(?!\d)|\d+)(?P<decimals>\.\d+)?"
    r"(?:(?:st|nd|rd|th)(?![^\W\d_]))?(?: *(?P<scale>[\ue003\ue006\ue009\ue00c]))?"
    r"|(?P<percent>%)"
    r"|(?P<mark>[\ue003\ue006\ue009\ue00c])"
    r"|(?P<word>[^\W\d_][\w']*)")
_CURRENCIES = {"$": "dollar", "usd": "dollar", "\u20ac": "euro", "eur": "euro", "\u00a3": "pound", "gbp": "pound",
               "\u00a5": "yen", "jpy": "yen", "\u20b9": "rupee", "inr": "rupee", "chf": "franc"}
# Words that carry no content of their own: Lucene's English stopwords (bm25s), with "no" and "not" taken out
# (a negation changes what an answer says), plus pronouns and the forms of "be", "have" and "do".
_EXTRA_STOPWORDS = {"i", "me", "my", "we", "us", "our", "you", "your", "he", "him", "his", "she", "her", "its",
                    "them", "what", "which", "who", "whom", "whose", "those", "am", "were", "been", "being", "has",
                    "have", "had", "do", "does", "did", "s"}


@dataclass(frozen=True)
class Token:
    kind: str  # "word" or "number"
    text: str  # a word's stem ("day" for "Days"); a number's value in plain decimals ("9000000" for "$9M")
    raw: str = ""  # the word as written, case-folded (approximate matches compare these)
    mantissa: str | None = None  # a scaled number's value before its scale ("9" for "9 million")
    stop: bool = False  # a word that carries no content ("the", "is")
    currency: bool = False  # a currency sign or code, which belongs after its number


def fold(text: str) -> str:
    """Text as a reader compares it: NFKC, case-folded, dashes and quotes unified, soft hyphens dropped,
    whitespace runs as one space."""
    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "").translate(_DASHES).translate(_QUOTES)
    return re.sub(r"\s+", " ", text).strip().casefold()


def tokens(text: str) -> list[Token]:
    """The words and numbers of `text`, in order, each currency sign or code moved after its number."""
    found: list[Token] = []
    for match in _TOKEN.finditer(_spelled_out(text)):
        found.append(_token(match))
    for index in range(len(found) - 1):  # "$ 9 and $ 5" -> "9 $ and 5 $"
        if found[index].currency and found[index + 1].kind == "number":
            found[index], found[index + 1] = found[index + 1], found[index]
    return found


def _spelled_out(text: str) -> str:
    """`text` folded, scales marked, number words as digits."""
    from text_to_num import alpha2digit

    text = unicodedata.normalize("NFKC", text).replace("\u00ad", "").translate(_DASHES).translate(_QUOTES)
    text = re.sub(r"\s+", " ", text)
    text = _AFTER_SIGN.sub(lambda m: m[1] + _MARKS[6 if m[2] in "mM" else 3], text)
    text = _GLUED_M.sub(_MARKS[6], text)
    text = _AFTER_DIGITS.sub(lambda m: _MARKS[_SCALE_WORDS[m[1].casefold()]], text)
    text = _ALONE.sub(lambda m: _MARKS[_SCALE_WORDS[(m[1] or m[2]).casefold()]], text)
    text = _PER_CENT.sub("percent", text)
    return alpha2digit(text, "en", threshold=0).casefold()


def _token(match: re.Match) -> Token:
    if match["digits"] is not None:
        digits = re.sub(r"[, ]", "", match["digits"]) + (match["decimals"] or "")
        exponent = _EXPONENTS.get(match["scale"] or "", 0)
        return Token("number", _plain(Decimal(digits).scaleb(exponent)), match[0],
                     _plain(Decimal(digits)) if exponent else None)
    if match["mark"] is not None:  # a scale with no number before it: "half a million"
        name = {3: "thousand", 6: "million", 9: "billion", 12: "trillion"}[_EXPONENTS[match["mark"]]]
        return Token("word", name, name)
    written = "percent" if match["percent"] else (match["sign"] or match["word"])
    written = re.sub(r"'s$", "", written).replace("'", "")
    currency = _CURRENCIES.get(written)
    word = currency or written
    return Token("word", _stem(word), word, stop=word in _stopwords(), currency=currency is not None)


def _plain(value: Decimal) -> str:
    """`value` in plain decimals without trailing zeros: 1250.00 -> "1250", 2.5e6 -> "2500000"."""
    return format(value.normalize(), "f")


@functools.lru_cache(maxsize=8192)
def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


@functools.cache
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


@functools.cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    return frozenset(set(STOPWORDS_EN) - {"no", "not"} | _EXTRA_STOPWORDS)
