"""Synthetic documents to show that a model trained with vlmcli's stages reads (Pillow + numpy, no torch).

    python -m finetune.synthetic data/synth --seed 0 --lines 4000 --pages 300 --receipts 300 --heldout 200

writes into OUT_DIR, images under images/<file stem>/NNNNN.png (grayscale PNG, paths relative to the JSONL):

    lines_train.jsonl            printed lines, train fonts                 {"image", "text", "font"}
    hand_train.jsonl             handwriting-style lines, train fonts       stage 1: low resolution, no splitting
    pages_train.jsonl            1-3 small lines on a large canvas          stage 2: legible only with splitting
    qa_train.jsonl               receipts, 3 questions each                 stage 3: {"image", "question", "answer", "font"}
    lines_heldout.jsonl          printed, train fonts, new strings
    lines_heldout_newfont.jsonl  printed, held-out fonts, new strings
    hand_heldout.jsonl           handwriting, train fonts, new strings
    hand_heldout_newfont.jsonl   handwriting, held-out fonts, new strings
    pages_heldout.jsonl          pages, train fonts, new strings
    qa_heldout.jsonl             receipts with new invoice numbers
    manifest.json                seed, counts, the train and held-out fonts, records per file

These are the transcription and question-answering shapes of finetune/data.py
(the extra "font" key is ignored by vlmcli and serves per-font analysis).
No text line occurs twice in a dataset, so no held-out string was seen in
training; receipt totals and dates may repeat, their invoice numbers do not.
The same seed and arguments give byte-identical JSONL and images.

Fonts come from Debian packages (see fonts.CATALOGUE): printed fonts-dejavu-core,
fonts-liberation2; handwriting-style fonts-dkg-handwriting, fonts-breip,
fonts-humor-sans, fonts-dancingscript, fonts-bwht, fonts-femkeklaver. Liberation
Serif and Breip are held out of training (fonts.HELD_OUT). Humor Sans and the bwht
fonts draw only capitals, so their text is upper-cased, label included.
"""

from finetune.synthetic.fonts import Font, FontSplit, FontsMissing, find_fonts, require_fonts, split_fonts
from finetune.synthetic.render import Look, random_look, render_line, render_page, render_receipt
from finetune.synthetic.text import Receipt, fresh_text, random_receipt, random_text
from finetune.synthetic.write import Counts, write_dataset

__all__ = ["Counts", "Font", "FontSplit", "FontsMissing", "Look", "Receipt", "find_fonts", "fresh_text",
           "random_look", "random_receipt", "random_text", "render_line", "render_page", "render_receipt",
           "require_fonts", "split_fonts", "write_dataset"]
