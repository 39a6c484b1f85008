"""Rank pages for a question by BM25 over their text (bm25s, pure: texts in, scores out).

bm25s's Lucene IDF stays positive on tiny corpora (a 2-page document), where
rank-bm25's Okapi IDF gives matching pages a score of zero. Words are stemmed
(PyStemmer) so "revenues" finds "revenue"; numbers are kept whole ("4,213" and
"4213" are one token) and single characters count ("item 7").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN_PATTERN = r"(?u)\b\w+\b"
# Thousands separators inside numbers: "4,213" / "4 213" / "4'213" -> "4213".
_GROUPED_DIGITS = re.compile(r"(?<=\d)[,\u00a0\u202f' ](?=\d{3}\b)")
# Question words carry no evidence about which page answers.
_QUESTION_WORDS = ["what", "which", "who", "whom", "whose", "when", "where", "why", "how", "does", "do", "did",
                   "was", "were", "has", "have", "had", "can", "could", "should", "would", "many", "much"]


@dataclass(frozen=True)
class Ranked:
    index: int  # position in the texts that were ranked
    score: float


def rank(question: str, texts: list[str]) -> list[Ranked]:
    """Every text, best first: BM25 score descending, ties in the order given. Empty texts score 0."""
    scores = _scores(question, texts)
    return sorted((Ranked(index, float(score)) for index, score in enumerate(scores)),
                  key=lambda ranked: (-ranked.score, ranked.index))


def _scores(question: str, texts: list[str]) -> list[float]:
    import bm25s

    if not texts:
        return []
    corpus = _tokens([_fold_numbers(text) for text in texts])
    query = _tokens([_fold_numbers(question)])[0]
    if not query or not any(corpus):
        return [0.0] * len(texts)
    index = bm25s.BM25()
    index.index(corpus, show_progress=False)
    return list(index.get_scores(query))


def _tokens(texts: list[str]) -> list[list[str]]:
    import bm25s
    import Stemmer
    from bm25s.stopwords import STOPWORDS_EN

    return bm25s.tokenize(texts, stopwords=list(STOPWORDS_EN) + _QUESTION_WORDS, stemmer=Stemmer.Stemmer("english"),
                          token_pattern=_TOKEN_PATTERN, return_ids=False, show_progress=False)


def _fold_numbers(text: str) -> str:
    return _GROUPED_DIGITS.sub("", text)
