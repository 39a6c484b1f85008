"""Synthetic documents to show that a model trained with vlmcli's stages reads (Pillow + numpy, no torch).

    python -m tools.synthetic data/synth --seed 0 --lines 4000 --pages 300 --receipts 300 --heldout 200

writes into OUT_DIR, images under images/<file stem>/NNNNN.png (grayscale PNG, paths relative to the JSONL):

    lines_train.jsonl            printed lines, train fonts           stage 1 (low resolution, no splitting)
    hand_train.jsonl             handwriting-style lines, train fonts stage 1
    pages_train.jsonl            1-3 small lines on a large canvas    stage 2 (legible only with splitting)
    qa_train.jsonl               receipts, 3 questions each           stage 3
    lines_heldout.jsonl          printed, train fonts, new strings
    lines_heldout_newfont.jsonl  printed, held-out fonts, new strings
    hand_heldout.jsonl           handwriting, train fonts, new strings
    hand_heldout_newfont.jsonl   handwriting, held-out fonts, new strings
    pages_heldout.jsonl          pages, train fonts, new strings
    qa_heldout.jsonl             receipts with new invoice numbers
    manifest.json                seed, counts, the train and held-out fonts, records per file

Records are the shapes of finetune/data.py: {"image", "text", "font"} for lines and
pages, {"image", "question", "answer", "font"} for receipts (vlmcli ignores "font";
it serves per-font analysis).
No line of a lines or pages file occurs twice in a dataset, so no held-out line
was seen in training; receipt totals, dates and items may repeat, invoice numbers
do not. The same seed and arguments give byte-identical JSONL (and images, with the
same Pillow and FreeType).

Fonts come from Debian packages (see fonts.CATALOGUE): printed fonts-dejavu-core,
fonts-liberation2; handwriting-style fonts-dkg-handwriting, fonts-breip,
fonts-humor-sans, fonts-dancingscript, fonts-bwht, fonts-femkeklaver. Liberation
Serif and Breip are held out of training (fonts.HELD_OUT). Humor Sans and the bwht
fonts draw only capitals, so their text is upper-cased, label included.
"""

from tools.synthetic.fonts import (
           Font,
           FontsMissing,
           FontSplit,
           find_fonts,
           require_fonts,
           split_fonts,
)
from tools.synthetic.render import (
           Look,
           random_look,
           render_line,
           render_page,
           render_receipt,
)
from tools.synthetic.text import Receipt, fresh_text, random_receipt, random_text
from tools.synthetic.write import Counts, write_dataset

__all__ = ["Counts", "Font", "FontSplit", "FontsMissing", "Look", "Receipt", "find_fonts", "fresh_text",
           "random_look", "random_receipt", "random_text", "render_line", "render_page", "render_receipt",
           "require_fonts", "split_fonts", "write_dataset"]
