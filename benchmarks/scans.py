"""The benchmark of scanned documents (docs/scans.md): a first pass against the model for `ask`, and where `-f pdf`
puts the words.

    .venv/bin/python -m benchmarks.scans [--pdf /usr/share/doc/libtasn1-doc/libtasn1.pdf] [--pages 20]
        [--checkpoint /tmp/standin] [--skip-model] [--out benchmarks/scans.json]

The document: a real multi-page PDF with a text layer (default: the GNU Libtasn1
manual that Debian's libtasn1-doc installs, pdfTeX, US letter), its first
`--pages` pages rendered at `--scan-dpi` by poppler and saved as an image-only
PDF (the text layer dropped), as a scanner would give them.

1. Ranking (no model): each page of the scan read by the first pass
   (`--engine`, Tesseract by default), pages ranked by vlmcli's own ranking for
   questions written in other words than the page's (QUESTIONS, each with the
   page that answers it): hit@1 and hit@3, beside the same ranking on the
   original text layer (the ceiling).
2. Boxes (no model): each scanned page's first-pass words with the page's own
   text standing in for the model's transcription (a perfect reader: the
   stand-in's weights are random, so its text is noise), through the `-f pdf`
   rendering; `pdftotext -bbox` of that PDF against `pdftotext -bbox` of the
   original: median IoU of the words matched by sequence alignment, for the
   words whose box came from the first pass and for those interpolated.
3. Time to the first answer (`--checkpoint`, the SmolVLM-256M stand-in of
   `python -m tools.models standin`): `ask` on the scan, cold cache, with
   `--first-pass tesseract` (first pass of every page, then the model reads
   `--top-k` pages) against `--first-pass model` (the model transcribes every
   page, `--ocr-tokens` each, then reads). The model is loaded once, before the
   clocks. Timings need a quiet machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_PDF = Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf")
# (question in other words than the page's, the 1-based page that answers it) for the Libtasn1 manual
QUESTIONS = [
    ("Which comment style borrowed from C cannot be used in a definitions file?", 5),
    ("Where can I find a sample grammar that ships with the package?", 5),
    ("Can the parser handle floating point numbers?", 6),
    ("Are length limits written in the grammar enforced?", 6),
    ("What file do I include in my C program to use the library?", 7),
    ("How do I only validate the grammar of a definitions file without producing output?", 8),
    ("How can I time how long decoding a binary encoding takes on the command line?", 10),
    ("Under which license may the library itself be redistributed?", 4),
    ("Which routine reads a declarations file from disk and builds the tree?", 11),
    ("How do I duplicate a node including everything below it?", 14),
    ("How should a true or false flag be passed when storing a value?", 15),
    ("What does it mean when an optional field cannot be found while reading?", 16),
    ("How do I learn how many bytes the encoded length needs before encoding it?", 19),
    ("What must the flags argument be when encoding an object identifier?", 20),
    ("How can I dump a node to a file to look at it while debugging?", 13),
]
_WORD = re.compile(r'xMin="([\d.]+)" yMin="([\d.]+)" xMax="([\d.]+)" yMax="([\d.]+)">([^<]*)</word>')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pdf", type=Path, default=DEFAULT_PDF)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--scan-dpi", type=float, default=150.0, help="the image-only PDF's resolution")
    parser.add_argument("--engine", default="tesseract", choices=["tesseract", "rapidocr"])
    parser.add_argument("--checkpoint", default="/tmp/standin")
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--answer-tokens", type=int, default=16)
    parser.add_argument("--ocr-tokens", type=int, default=512, help="per page transcribed by the model")
    parser.add_argument("--dtype", default="float32", choices=["auto", "float32", "bfloat16"],
                        help="float32: what `auto` gives on a CPU without native bf16 (AVX2)")
    parser.add_argument("--skip-model", action="store_true", help="ranking and boxes only")
    parser.add_argument("--out", type=Path, default=HERE / "scans.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vlmcli-scans-") as folder:
        os.environ["VLMCLI_CACHE_DIR"] = str(Path(folder) / "cache")
        scan = image_only(args.pdf, Path(folder) / "scan.pdf", args.pages, args.scan_dpi)
        questions = [(q, page) for q, page in QUESTIONS if page <= args.pages] if args.pdf == DEFAULT_PDF else []
        report = {"pdf": str(args.pdf), "pages": args.pages, "scan_dpi": args.scan_dpi, "engine": args.engine}
        words, first_pass_s = first_pass(scan, args.pages, args.engine)
        report["first_pass_s_per_page"] = first_pass_s / args.pages
        report["ranking"] = ranking(args.pdf, words, questions)
        report["boxes"] = boxes(args.pdf, scan, words, Path(folder))
        if not args.skip_model:
            report["first_answer"] = first_answer(scan, questions[0][0] if questions else "What is this about?",
                                                  args, Path(folder))
    report["machine"] = _machine()
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


def image_only(source: Path, target: Path, pages: int, dpi: float) -> Path:
    """The first `pages` pages of `source` rendered at `dpi` (poppler), as an image-only PDF of the same page
    sizes."""
    from vlmcli.inputs import pdfs
    from vlmcli.specs import PdfSpec

    images = [pdfs.render_page(source, number, dpi, PdfSpec()).convert("L") for number in range(1, pages + 1)]
    images[0].save(target, save_all=True, append_images=images[1:], resolution=dpi)
    return target


def first_pass(scan: Path, pages: int, engine: str):
    """Every page's first-pass words (cold), and the seconds they took."""
    from vlmcli.inputs.documents import page_refs
    from vlmcli.pipeline.firstpass import FirstPassReader
    from vlmcli.specs import FirstPass, FirstPassSpec, PdfSpec

    reader = FirstPassReader(engine, FirstPassSpec(FirstPass(engine)), PdfSpec())
    started = time.perf_counter()
    words = [reader.words(ref) for ref in page_refs(scan, f"1-{pages}", PdfSpec())]
    return words, time.perf_counter() - started


def ranking(original: Path, words: list, questions: list[tuple[str, int]]) -> dict:
    """hit@1 and hit@3 of the answer pages, ranked on the first pass's text and on the original text layer."""
    from vlmcli.inputs import pdfs
    from vlmcli.pipeline.docqa.retrieval import rank
    from vlmcli.specs import PdfSpec

    layers = pdfs.page_texts(original, list(range(1, len(words) + 1)), PdfSpec())
    result = {"questions": len(questions)}
    for name, texts in (("first_pass", [page.text() for page in words]), ("text_layer", layers)):
        ranks = [[r.index + 1 for r in rank(question, texts)].index(page) + 1 for question, page in questions]
        result[name] = {"hit_at_1": _share(ranks, 1), "hit_at_3": _share(ranks, 3), "answer_page_ranks": ranks}
    return result


def boxes(original: Path, scan: Path, words: list, folder: Path) -> dict:
    """Median IoU of `-f pdf`'s word boxes against the original's, the page's own text as the transcription."""
    from vlmcli.inputs import pdfs
    from vlmcli.jobs.renderings import SearchablePdf
    from vlmcli.pipeline.results import PageResult
    from vlmcli.specs import PdfSpec
    from vlmcli.words import iou
    from vlmcli.words.align import align, fold

    texts = pdfs.page_texts(original, list(range(1, len(words) + 1)), PdfSpec())
    items = [PageResult(scan, number, text, 0, 0, 0.0, "stop", longest_edge_px=2048,
                        words=align(text, page)) for number, (text, page) in enumerate(zip(texts, words), start=1)]
    output = folder / "searchable.pdf"
    output.write_bytes(SearchablePdf(False, PdfSpec()).document("scan", items))
    ours, theirs = _bbox_words(output), _bbox_words(original)
    from_first_pass, interpolated, placed_pages = [], [], 0
    for number, item in enumerate(items, start=1):
        kinds = {fold(w.text): w.confidence is not None for w in item.words.words}
        placed_pages += bool(item.words.words)
        for (text, box), (_, truth) in _matched(ours.get(number, []), theirs.get(number, []), fold):
            (from_first_pass if kinds.get(fold(text), True) else interpolated).append(iou(box, truth))
    everything = from_first_pass + interpolated
    return {"pages_with_words_placed": placed_pages, "matched_words": len(everything),
            "original_words": sum(len(theirs.get(n, [])) for n in range(1, len(words) + 1)),
            "median_iou": _median(everything), "median_iou_first_pass_words": _median(from_first_pass),
            "first_pass_words": len(from_first_pass), "median_iou_interpolated_words": _median(interpolated),
            "interpolated_words": len(interpolated),
            "share_iou_at_least_0_5": sum(v >= 0.5 for v in everything) / max(len(everything), 1)}


def first_answer(scan: Path, question: str, args, folder: Path) -> dict:
    """Seconds to the first answer on the scan, cold cache, first pass against the model's transcriptions."""
    from vlmcli import model
    from vlmcli.pipeline.docqa.answer import ask_documents
    from vlmcli.specs import DType, FirstPass, FirstPassSpec, RunSpec, SearchSpec

    run = RunSpec.from_options(model=args.checkpoint, max_new_tokens=args.answer_tokens,
                               min_new_tokens=args.answer_tokens, dtype=DType(args.dtype))
    ocr_run = dataclasses.replace(run, generation=dataclasses.replace(
        run.generation, max_new_tokens=args.ocr_tokens, min_new_tokens=args.ocr_tokens))
    started = time.perf_counter()
    loaded = model.load(run.model, run.split)
    load_s = time.perf_counter() - started
    model.load = lambda spec, split, **kw: loaded
    rows = {}
    for engine in (FirstPass(args.engine), FirstPass.model):
        os.environ["VLMCLI_CACHE_DIR"] = str(folder / f"cache-{engine.value}")  # cold
        started = time.perf_counter()
        answer = ask_documents([scan], question, run, SearchSpec(top_k=args.top_k, first_pass=FirstPassSpec(engine)),
                               ocr_run=ocr_run)
        rows[engine.value] = {"seconds": time.perf_counter() - started, "pages_read": len(answer.asked),
                              "text_sources": sorted({r.page.source for r in answer.ranked}),
                              "read_s": sum(asked.answer.seconds for asked in answer.asked)}
    first, second = rows[args.engine]["seconds"], rows["model"]["seconds"]
    return {"checkpoint": args.checkpoint, "load_s": load_s, "dtype": str(loaded.dtype), "question": question,
            "top_k": args.top_k, "answer_tokens": args.answer_tokens, "ocr_tokens": args.ocr_tokens, "rows": rows,
            "speedup": second / first if first else None}


def _bbox_words(pdf: Path) -> dict[int, list[tuple[str, tuple]]]:
    """`pdftotext -bbox`'s words per 1-based page: (text, (x0, y0, x1, y1)) in points from the top-left."""
    html = subprocess.run(["pdftotext", "-bbox", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    import html as entities

    return {number: [(entities.unescape(w), (float(a), float(b), float(c), float(d)))
                     for a, b, c, d, w in _WORD.findall(page)]
            for number, page in enumerate(html.split("<page ")[1:], start=1)}


def _matched(ours: list, theirs: list, fold) -> list:
    """Pairs of equal words, in order, by a longest common subsequence of the folded words."""
    from rapidfuzz.distance import Indel

    keys_ours = [fold(text) or f"\0{i}" for i, (text, _) in enumerate(ours)]
    keys_theirs = [fold(text) or f"\1{i}" for i, (text, _) in enumerate(theirs)]
    pairs = []
    for op in Indel.opcodes(keys_ours, keys_theirs):
        if op.tag == "equal":
            pairs.extend(zip(ours[op.src_start:op.src_end], theirs[op.dest_start:op.dest_end]))
    return pairs


def _share(ranks: list[int], k: int) -> float | None:
    return sum(rank <= k for rank in ranks) / len(ranks) if ranks else None


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def _machine() -> dict:
    from vlmcli.inputs.firstpass import engines

    return {"cpus": os.cpu_count(), "tesseract": engines.version("tesseract") if _has("tesseract") else None,
            "load_average": os.getloadavg()}


def _has(engine: str) -> bool:
    from vlmcli.inputs.firstpass import rapidocr, tesseract

    return tesseract.installed() if engine == "tesseract" else rapidocr.installed()


if __name__ == "__main__":
    main()
