"""The benchmark of `vlmcli ask` over whole documents: page ranking on generated PDFs, then seconds per question.

    .venv/bin/python -m benchmarks.docqa [--checkpoint /tmp/standin] [--documents 50] [--out benchmarks/docqa.json]

Retrieval: `--documents` PDFs of 10-40 pages with a text layer (receipts, forms
and prose, tools/pdfs.py), two questions per document whose fact sits on one
page among distractors (the same kind of fact about someone else), plus one
question in five documents whose answer is in none. Page hit rate @1 and @3 over
the answerable questions, through vlmcli's own text extraction and ranking.

Seconds per question with the model (`--checkpoint`, the SmolVLM-256M stand-in
of `python -m tools.models standin`; random weights, so answers are noise, none
is grounded, and each question reads every one of the default `--top-k` pages
that share a word with it, forced to `--answer-tokens` new tokens; pages without
text are transcribed with `--ocr-tokens` new tokens), as a user asks them: each
question in its own process, which loads the model. For a text-layer PDF and a
scanned PDF: a first question with an empty page cache, then another question
about the same document in a second process that finds the first one's cache
(the scanned pages' text, the image features of the pages it read; pages the
second question reads that the first did not are encoded then). Each row shows
the whole process, the model load (apart), and the question without the load.
Run from the repository root.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LEASE = ("When does the lease of Ada Moreau end?", "The lease of Ada Moreau ends on 14 March 2027.")
OFFICE = ("Which city is the office of Ada Moreau in?", "The office of Ada Moreau is located in Lyon.")
NAMES = ["Ada Moreau", "Bruno Keller", "Chen Wei", "Dara Okafor", "Elif Yilmaz", "Femi Adeyemi", "Greta Lind",
         "Hugo Silva", "Ines Duarte", "Jonas Berg", "Kira Novak", "Luca Ferri", "Maya Cohen", "Nils Eriksen"]
FACTS = [  # question, the sentence that answers it, the kind of document it fits
    ("What is the policy number of {name}?", "The policy number of {name} is {code}.", "form"),
    ("When does the lease of {name} end?", "The lease of {name} ends on {date}.", "prose"),
    ("What did {name} pay at the hardware store?", "Hardware store receipt for {name}: total paid {amount} EUR.",
     "receipt"),
    ("Which city is the office of {name} in?", "The office of {name} is located in {city}.", "prose"),
]
CITIES = ["Lyon", "Porto", "Graz", "Tartu", "Bergen", "Ghent", "Turku", "Brno", "Split", "Cork"]
FILLER = ("the committee reviewed the quarterly budget and the travel policy before the annual meeting while the "
          "facilities team reported on maintenance schedules supplier contracts and office equipment").split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="/tmp/standin")
    parser.add_argument("--documents", type=int, default=50)
    parser.add_argument("--max-pages", type=int, default=40, help="pages per document: 10 to this")
    parser.add_argument("--answer-tokens", type=int, default=16)
    parser.add_argument("--ocr-tokens", type=int, default=64)
    parser.add_argument("--scanned-pages", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16"],
                        help="float32: what `auto` gives on a CPU without native bf16 (AVX2)")
    parser.add_argument("--skip-model", action="store_true", help="retrieval only")
    parser.add_argument("--skip-retrieval", action="store_true", help="seconds per question only")
    parser.add_argument("--out", type=Path, default=HERE / "docqa.json")
    parser.add_argument("--ask", nargs=2, metavar=("PDF", "QUESTION"),
                        help="(the benchmark's child process) ask one question, print its row as JSON")
    args = parser.parse_args()
    if args.ask:
        print(json.dumps(ask_once(Path(args.ask[0]), args.ask[1], args)))
        return
    with tempfile.TemporaryDirectory(prefix="vlmcli-docqa-") as folder:
        os.environ["VLMCLI_CACHE_DIR"] = str(Path(folder) / "cache")
        report = {} if args.skip_retrieval else {"retrieval": retrieval(Path(folder), args.documents, args.max_pages)}
        if not args.skip_model:
            report["questions"] = questions(Path(folder), args)
    report["machine"] = _machine()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def retrieval(folder: Path, documents: int, max_pages: int) -> dict:
    """hit@1 and hit@3 of the text-layer ranking, and its seconds per question (extraction once per document)."""
    from tools.pdfs import text_pdf
    from vlmcli.inputs import pdfs
    from vlmcli.pipeline.docqa.pagetexts import has_text
    from vlmcli.pipeline.docqa.retrieval import rank
    from vlmcli.specs import PdfSpec

    rng = random.Random(0)
    hits1 = hits3 = answerable = unanswerable = pages_total = 0
    extract_s = rank_s = 0.0
    unanswered_top: list[float] = []
    answered_top: list[float] = []
    for number in range(documents):
        pages, asked = _document(rng, number, max_pages)
        path = text_pdf(folder / f"doc{number}.pdf", pages)
        started = time.perf_counter()
        texts = pdfs.page_texts(path, list(range(1, len(pages) + 1)), PdfSpec())
        extract_s += time.perf_counter() - started
        assert all(has_text(text) for text in texts)
        pages_total += len(pages)
        for question, page_index in asked:
            started = time.perf_counter()
            ranked = rank(question, texts)
            rank_s += time.perf_counter() - started
            if page_index is None:
                unanswerable += 1
                unanswered_top.append(ranked[0].score)
                continue
            answerable += 1
            answered_top.append(ranked[0].score)
            order = [r.index for r in ranked]
            hits1 += order[0] == page_index
            hits3 += page_index in order[:3]
    return {"documents": documents, "pages": pages_total, "answerable_questions": answerable,
            "unanswerable_questions": unanswerable, "hit_at_1": hits1 / answerable, "hit_at_3": hits3 / answerable,
            "extract_ms_per_page": 1000 * extract_s / pages_total,
            "rank_ms_per_question": 1000 * rank_s / (answerable + unanswerable),
            "median_top_score_answerable": sorted(answered_top)[len(answered_top) // 2],
            "median_top_score_unanswerable": sorted(unanswered_top)[len(unanswered_top) // 2] if unanswered_top else None}


def _document(rng: random.Random, number: int, max_pages: int) -> tuple[list[str], list[tuple[str, int | None]]]:
    """Pages of filler in one document kind, two planted facts, distractor facts about other people; questions."""
    kind = ("receipt", "form", "prose")[number % 3]
    pages = [_filler(rng, kind) for _ in range(rng.randint(10, max(10, max_pages)))]
    people = rng.sample(NAMES, 6)
    facts = rng.sample(FACTS, 2)
    asked: list[tuple[str, int | None]] = []
    for (question, sentence, _), name, other in zip(facts, people[:2], people[2:4]):
        page, decoy, mention = rng.sample(range(len(pages)), 3)
        pages[page] += "\n" + sentence.format(name=name, **_values(rng))
        pages[decoy] += "\n" + sentence.format(name=other, **_values(rng))  # the same fact about someone else
        pages[mention] += f"\n{name} signed the attendance list of the meeting."  # the name, without the fact
        asked.append((question.format(name=name), page))
    if number % 5 == 0:  # a fact the document does not hold, about someone it never names
        unasked = next(fact for fact in FACTS if fact not in facts)
        asked.append((unasked[0].format(name=people[4]), None))
    return pages, asked


def _values(rng: random.Random) -> dict:
    return {"code": f"PX-{rng.randint(100000, 999999)}", "date": f"{rng.randint(1, 28)} March {rng.randint(2025, 2030)}",
            "amount": f"{rng.randint(10, 999)}.{rng.randint(0, 99):02d}", "city": rng.choice(CITIES)}


def _filler(rng: random.Random, kind: str) -> str:
    if kind == "receipt":
        lines = [f"{rng.choice(FILLER)} {rng.choice(FILLER)} x{rng.randint(1, 9)}  {rng.randint(1, 99)}.{rng.randint(0, 99):02d}"
                 for _ in range(rng.randint(8, 20))]
        return "Receipt\n" + "\n".join(lines) + f"\nTotal {rng.randint(10, 999)}.{rng.randint(0, 99):02d}"
    if kind == "form":
        return "\n".join(f"{rng.choice(FILLER).capitalize()} {rng.choice(FILLER)}: {rng.choice(FILLER)} "
                         f"{rng.randint(1, 9999)}" for _ in range(rng.randint(10, 25)))
    return "\n".join(" ".join(rng.choice(FILLER) for _ in range(14)).capitalize() + "."
                     for _ in range(rng.randint(10, 30)))


def questions(folder: Path, args) -> dict:
    """Seconds per question, each question in a process of its own: text-layer and scanned PDFs, a first
    question with an empty page cache, then another question in a second process that reuses that cache."""
    from tools.pdfs import scanned_pdf, text_pdf
    from vlmcli.specs import DEFAULT_TOP_K

    rng = random.Random(1)
    pages = [_filler(rng, "prose") for _ in range(12)]
    pages[7] += "\n" + LEASE[1]
    pages[8] += "\n" + OFFICE[1]
    text = text_pdf(folder / "text.pdf", pages)
    scan = scanned_pdf(folder / "scan.pdf", pages[6:6 + args.scanned_pages])
    rows = {}
    for name, path in (("text layer", text), ("scanned", scan)):
        cache = folder / f"cache-{path.stem}"  # empty for the first question, kept for the second
        rows[f"{name}, first question, empty page cache"] = _ask_in_a_process(path, LEASE[0], cache, args)
        rows[f"{name}, another question, second process, page cache kept"] = _ask_in_a_process(
            path, OFFICE[0], cache, args)
    return {"checkpoint": args.checkpoint, "top_k": DEFAULT_TOP_K, "answer_tokens": args.answer_tokens,
            "ocr_tokens": args.ocr_tokens, "scanned_pages": args.scanned_pages, "rows": rows}


def _ask_in_a_process(path: Path, question: str, cache: Path, args) -> dict:
    """One question in a new Python process (this script with --ask), timed whole from outside: `process_s`
    = `startup_s` (Python and vlmcli's own imports) + `load_s` + `question_s`."""
    command = [sys.executable, "-m", "benchmarks.docqa", "--ask", str(path), question, "--checkpoint",
               args.checkpoint, "--answer-tokens", str(args.answer_tokens), "--ocr-tokens", str(args.ocr_tokens),
               "--dtype", args.dtype]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent,
                            env={**os.environ, "VLMCLI_CACHE_DIR": str(cache)})
    process_s = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    row = json.loads(result.stdout.splitlines()[-1])
    return {"process_s": process_s, **row, "startup_s": process_s - row["load_s"] - row["question_s"]}


def ask_once(path: Path, question: str, args) -> dict:
    """The child process: one question at the default --top-k, with the page cache in $VLMCLI_CACHE_DIR.
    `load_s` is the model's load: importing torch and transformers (done first here, where the pipeline would
    import them on its first page) and reading the checkpoint; `question_s` the rest of the question (text,
    ranking, transcription of pages without text, reading, checking); `read_s` the reading alone."""
    started = time.perf_counter()
    import torch  # noqa: F401
    import transformers  # noqa: F401

    import vlmcli.model.generate  # noqa: F401
    import_s = time.perf_counter() - started
    from vlmcli import model
    from vlmcli.pipeline.docqa.answer import ask_documents
    from vlmcli.progress import NullProgress
    from vlmcli.specs import DType, FirstPass, FirstPassSpec, RunSpec, SearchSpec

    class LoadClock(NullProgress):
        started_at = seconds = 0.0

        def loading_model(self, model_id: str) -> None:
            self.started_at = time.perf_counter()

        def model_loaded(self) -> None:
            self.seconds = time.perf_counter() - self.started_at

    dtypes: list[str] = []  # what the checkpoint loaded as (--dtype auto resolves per machine)
    real_load = model.load

    def load(spec, split, **kwargs):
        loaded = real_load(spec, split, **kwargs)
        dtypes.append(str(loaded.dtype))
        return loaded

    model.load = load
    run = RunSpec.from_options(model=args.checkpoint, max_new_tokens=args.answer_tokens,
                               min_new_tokens=args.answer_tokens, dtype=DType(args.dtype))
    ocr_run = dataclasses.replace(run, generation=dataclasses.replace(
        run.generation, max_new_tokens=args.ocr_tokens, min_new_tokens=args.ocr_tokens))
    clock = LoadClock()
    # Scanned pages transcribed by the model, the path this benchmark measures (benchmarks/scans.py measures the
    # first pass)
    search = SearchSpec(first_pass=FirstPassSpec(FirstPass.model))
    answer = ask_documents([path], question, run, search, progress=clock, ocr_run=ocr_run)
    return {"load_s": import_s + clock.seconds, "load_import_s": import_s, "load_checkpoint_s": clock.seconds,
            "question_s": answer.seconds - clock.seconds,
            "read_s": sum(asked.answer.seconds for asked in answer.asked), "pages": len(answer.ranked),
            "pages_read": [asked.ref.page_number for asked in answer.asked],
            "features_cached": [asked.answer.features_cached for asked in answer.asked],
            "text_sources": sorted({r.page.source for r in answer.ranked}),
            "image_tokens": sum(asked.answer.image_tokens for asked in answer.asked),
            "new_tokens": sum(asked.answer.new_tokens for asked in answer.asked),
            "dtype": dtypes[0] if dtypes else None}


def _machine() -> dict:
    from vlmcli.model.cpu import cpu_flags

    flags = cpu_flags()
    return {"cpus": os.cpu_count(), "avx2": "avx2" in flags, "avx512f": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags}


if __name__ == "__main__":
    main()
