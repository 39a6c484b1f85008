"""Page furniture: the lines of a page that are the same on every page (pure, no libraries).

Page numbers and running headers and footers say nothing about the page they
are on, so they never count as evidence for an answer ("Page 1 of 12" must not
ground "1 million"). Only the first and last `EDGE_LINES` lines of a page can be
furniture. Two kinds:

- a page-number line, on any page: "Page 3", "p. 3", "Page 3 of 12", "3 of 12", "3/12", "- 3 -";
- a line repeated on more than half of the pages of a document of at least `MIN_PAGES` pages, its numbers
  either the same on every page ("Annual report 2023") or counting with the page ("ACME - 7", a bare "7").
  Numbers that vary otherwise (a receipt's "Total 12.50" closing every page) are content, not furniture.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict

EDGE_LINES = 3  # lines at the top and at the bottom of a page where headers, footers and page numbers sit
MIN_PAGES = 3  # fewer pages cannot show which lines repeat "on most pages"
_PAGE_NUMBER = re.compile(r"(?:page|pg\.?|p\.)\s*\d+(?:\s*(?:of|/)\s*\d+)?|\d+\s*(?:of|/)\s*\d+|-\s*\d+\s*-",
                          re.IGNORECASE)


def bodies(texts: list[str], page_numbers: list[int]) -> list[str]:
    """Each page's text without its furniture. `texts` are pages of one document, `page_numbers` their
    1-based numbers in it (pages may be missing: `--pages 4-9`)."""
    lines = [[line for line in text.splitlines() if line.strip()] for text in texts]
    furniture = _repeated(lines, page_numbers) if len(texts) >= MIN_PAGES else set()
    kept = []
    for page, text in enumerate(texts):
        edges, index, body = _edges(len(lines[page])), -1, []
        for line in text.splitlines():  # blank lines kept: they end paragraphs
            index += bool(line.strip())
            if not line.strip() or index not in edges or not (
                    _PAGE_NUMBER.fullmatch(" ".join(line.split())) or (page, index) in furniture):
                body.append(line)
        kept.append("\n".join(body).strip("\n"))
    return kept


def _edges(count: int) -> set[int]:
    return set(range(min(EDGE_LINES, count))) | set(range(max(0, count - EDGE_LINES), count))


def _repeated(lines: list[list[str]], page_numbers: list[int]) -> set[tuple[int, int]]:
    """(page, line) of each edge line whose shape (digits masked) is on more than half of the pages, with
    numbers that are fixed or count with the page."""
    seen: dict[str, dict[int, tuple[int, tuple[int, ...]]]] = defaultdict(dict)  # shape -> page -> (line, numbers)
    for page, page_lines in enumerate(lines):
        for index in sorted(_edges(len(page_lines))):
            shape = re.sub(r"\d+", "#", " ".join(page_lines[index].split()).casefold())
            seen[shape].setdefault(page, (index, tuple(int(n) for n in re.findall(r"\d+", page_lines[index]))))
    furniture: set[tuple[int, int]] = set()
    for places in seen.values():
        fitting = _fitting(places, page_numbers)
        if 2 * len(fitting) > len(lines):
            furniture |= {(page, places[page][0]) for page in fitting}
    return furniture


def _fitting(places: dict[int, tuple[int, tuple[int, ...]]], page_numbers: list[int]) -> list[int]:
    """The pages where each number of the line is the value most pages show there, or the page number plus
    the offset most pages show there."""
    width = len(next(iter(places.values()))[1])
    fixed = [Counter(numbers[at] for _, numbers in places.values()).most_common(1)[0][0] for at in range(width)]
    offsets = [Counter(numbers[at] - page_numbers[page] for page, (_, numbers) in places.items())
               .most_common(1)[0][0] for at in range(width)]
    return [page for page, (_, numbers) in places.items()
            if all(numbers[at] in (fixed[at], page_numbers[page] + offsets[at]) for at in range(width))]
