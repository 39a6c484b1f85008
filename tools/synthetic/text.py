"""What the synthetic documents say: words, numbers, dates, amounts, invoice numbers (stdlib + numpy).

Every function takes a numpy Generator, so one seed fixes the whole dataset.
The character set is kept small (letters, digits, space and `.,:-/$`) because
the model that learns from these documents is tiny.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

CHARSET = frozenset(string.ascii_letters + string.digits + " .,:-/$")
MIN_MAX_CHARS = 8  # below this, dates and invoice numbers no longer fit a line

# A few hundred common English words: enough variety that a model must read, not memorize.
WORDS = tuple("""
a about above account across act add address after again against age ago agree air all almost alone
along already also always amount and animal answer any apple april area arm around art ask at august
away baby back bad bag ball bank base be bear beauty bed before begin behind below best better between
big bill bird black blue boat body book both box boy bread break bring brother brown build busy but
buy by call came can car card care carry case cat cause center change charge check child city class
clean clear close cloud coat cold color come common company copy corner cost could count country
course cover cross cup cut dark date day dear deep did dinner direct do doctor dog door down draw
dream dress drink drive dry during each early earth east easy eat edge egg end enough even evening
ever every eye face fact fall family far farm fast father fee feel field fill find fine fire first
fish five floor flower fly follow food foot for form four free fresh friday friend from front fruit
full game garden gave get girl give glass go gold good green ground group grow hair half hand happy
hard have he head hear heart heavy help her here high hill him his hold home hope horse hot hour
house how idea if in inch into invoice iron island it item job join july june just keep key kind
king know lake land large last late laugh law lead learn leave left leg less letter level light like
line list little live long look lost love low made main make man many map march mark market may meal
meet milk mind minute miss monday money month moon more morning most mother move much music must
name near need never new next night north note number of off office often oil old on once one only
open order other our out over page paid paint paper park part pay pen people pick piece place plan
plant play please point post power price print quick quiet rain read ready real receipt red rest
rice right river road rock room round rule run safe said sale salt same save say school sea seat
second see sell send seven ship shop short show side sign simple sing sister sit six size sky sleep
slow small snow so soft some song soon south speak spring stand star start station step stone stop
store story street strong study sugar summer sun sunday table tail take talk tax tea teach tell ten
than that the then there they thing think this three time today together total town train tree true
try tuesday turn two under unit until up use very village visit voice wait walk wall want warm wash
watch water way we week well west what wheel when where white who why wind window winter with wood
word work world write year yellow yes yesterday you young
""".split())
MONTHS = ("January", "February", "March", "April", "May", "June", "July",
          "August", "September", "October", "November", "December")


def pick(rng: np.random.Generator, items: Sequence[str]) -> str:
    return items[int(rng.integers(len(items)))]


def random_word(rng: np.random.Generator) -> str:
    word, case = pick(rng, WORDS), rng.random()
    return word.upper() if case < 0.1 else word.capitalize() if case < 0.4 else word


def random_phrase(rng: np.random.Generator, max_chars: int) -> str:
    """One to five words, stopping before the line would exceed max_chars."""
    words = [random_word(rng)]
    while len(words[0]) > max_chars:
        words = [random_word(rng)]
    for _ in range(int(rng.integers(0, 5))):
        word = random_word(rng)
        if len(" ".join(words)) + 1 + len(word) <= max_chars:
            words.append(word)
    return " ".join(words)


def random_number(rng: np.random.Generator) -> str:
    digits = int(rng.integers(1, 7))
    return str(int(rng.integers(10 ** (digits - 1), 10 ** digits)))


def random_date(rng: np.random.Generator) -> str:
    year, month, day = int(rng.integers(1990, 2036)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    formats = (f"{year}-{month:02d}-{day:02d}", f"{day:02d}/{month:02d}/{year}", f"{month:02d}/{day:02d}/{year}",
               f"{day}.{month}.{year}", f"{MONTHS[month - 1][:3]} {day}, {year}", f"{day} {MONTHS[month - 1]} {year}")
    return pick(rng, formats)


def format_amount(cents: int, dollar: bool) -> str:
    return f"{'$' if dollar else ''}{cents // 100:,}.{cents % 100:02d}"


def random_amount(rng: np.random.Generator) -> str:
    # log-uniform from $0.10 to $100,000: small prices and large invoices both occur
    cents = int(10 ** rng.uniform(1, 7))
    return format_amount(cents, dollar=bool(rng.random() < 0.6))


def random_invoice_number(rng: np.random.Generator) -> str:
    return f"INV-{int(rng.integers(10000, 100000))}"


def random_field(rng: np.random.Generator) -> str:
    """A labelled value as on a form: 'Total: $12.50', 'Ref INV-20931'."""
    labels, make = FIELDS[int(rng.integers(len(FIELDS)))]
    return f"{pick(rng, labels)}{'' if rng.random() < 0.3 else ':'} {make(rng)}"


FIELDS = (
    (("Total", "Amount", "Due", "Paid", "Tax", "Subtotal"), random_amount),
    (("Date", "Due", "Issued", "Paid"), random_date),
    (("No.", "Ref", "Qty", "Unit", "Room"), random_number),
    (("Invoice", "Ref", "Order"), random_invoice_number),
)


# (generator, weight): phrases dominate, as in running text
_KINDS: tuple[tuple[Callable[[np.random.Generator], str], float], ...] = (
    (random_number, 0.10), (random_date, 0.15), (random_amount, 0.12),
    (random_invoice_number, 0.05), (random_field, 0.13),
)
_PHRASE_WEIGHT = 1.0 - sum(weight for _, weight in _KINDS)


def random_text(rng: np.random.Generator, max_chars: int = 24) -> str:
    """One line of text of at most max_chars characters, all in CHARSET."""
    if max_chars < MIN_MAX_CHARS:
        raise ValueError(f"max_chars must be at least {MIN_MAX_CHARS}, not {max_chars}")
    draw = rng.random()
    if draw < _PHRASE_WEIGHT:
        return random_phrase(rng, max_chars)
    draw -= _PHRASE_WEIGHT
    for make, weight in _KINDS:
        if draw < weight:
            text = make(rng)
            return text if len(text) <= max_chars else random_phrase(rng, max_chars)
        draw -= weight
    return random_phrase(rng, max_chars)  # float rounding at the top of the range


def random_chars(rng: np.random.Generator, max_chars: int) -> str:
    """1 to max_chars characters drawn uniformly from CHARSET: text no language prior can guess."""
    alphabet = sorted(CHARSET - {" "})
    return "".join(alphabet[int(i)] for i in rng.integers(len(alphabet), size=int(rng.integers(1, max_chars + 1))))


def fresh_text(rng: np.random.Generator, seen: set[str], max_chars: int = 24,
               make: Callable[[np.random.Generator], str] | None = None, upper: bool = False,
               tries: int = 1000) -> str:
    """A text not in `seen`, which then records it: no string occurs twice in a dataset."""
    for _ in range(tries):
        text = make(rng) if make else random_text(rng, max_chars)
        text = text.upper() if upper else text
        if text not in seen:
            seen.add(text)
            return text
    raise RuntimeError(f"no new text after {tries} tries: the dataset is too large for max_chars={max_chars}")


@dataclass(frozen=True)
class Receipt:
    store: str
    invoice_number: str
    date: str
    items: tuple[tuple[str, str], ...]  # (description, amount) as printed
    total: str

    @property
    def rows(self) -> tuple[tuple[str, str], ...]:
        """The printed rows, (left, right) text, top to bottom; '-' rows are rules."""
        return ((self.store, ""), ("Invoice:", self.invoice_number), ("Date:", self.date), ("-", ""),
                *self.items, ("-", ""), ("Total:", self.total))

    @property
    def qa(self) -> tuple[tuple[str, str], ...]:
        return (("What is the total?", self.total), ("What is the invoice number?", self.invoice_number),
                ("What is the date?", self.date))


def random_receipt(rng: np.random.Generator, seen: set[str]) -> Receipt:
    """A receipt whose invoice number is new to `seen`; the total is the exact sum of the items."""
    store = " ".join(random_word(rng).capitalize() for _ in range(int(rng.integers(1, 3))))
    invoice = fresh_text(rng, seen, make=random_invoice_number)
    cents = [int(rng.integers(50, 20000)) for _ in range(int(rng.integers(2, 5)))]
    items = tuple((random_word(rng).capitalize(), format_amount(c, dollar=False)) for c in cents)
    return Receipt(store, invoice, random_date(rng), items, format_amount(sum(cents), dollar=True))
