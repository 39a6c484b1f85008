"""The checkpoints vlmcli names: short aliases pinned to hub repositories, each with its family, size, licence,
what it writes and its published accuracy (stdlib only; `--model ALIAS` and `vlmcli models` read it).

Published figures are their sources' own, cited beside them. The CPU cost of an A4 page is vlmcli's own, measured
on a stand-in of the exact architecture (benchmarks/families.py); `vlmcli models` reads it from that benchmark's
committed output, copied into CPU_COST below by `python -m benchmarks.docs_tables` (tests/test_docs.py checks
that the copy equals the file).
"""

from __future__ import annotations

from dataclasses import dataclass

CPU_COST_FILE = "benchmarks/families-last-run.txt"


@dataclass(frozen=True)
class Checkpoint:
    alias: str
    repo: str  # the hub repository the alias is pinned to
    family: str  # model/families: the profile that reads it
    parameters: str
    license: str
    output: str
    accuracy: str = ""  # the published benchmark score, with its source
    use: str = ""  # what it is the right choice for


CHECKPOINTS = (
    Checkpoint("smolvlm-256m", "HuggingFaceTB/SmolVLM-256M-Instruct", "smolvlm", "256M", "Apache-2.0", "text",
               use="the default: the lightest reader and question answerer on a laptop CPU"),
    Checkpoint("smolvlm-500m", "HuggingFaceTB/SmolVLM-500M-Instruct", "smolvlm", "507M", "Apache-2.0", "text",
               use="a little more accurate than 256M, twice the decode cost"),
    Checkpoint("granite-docling", "ibm-granite/granite-docling-258M", "doctags", "258M", "Apache-2.0",
               "DocTags: structure, tables, boxes", use="structure (headings, tables as CSV) at the 256M's cost"),
    Checkpoint("smoldocling", "ds4sd/SmolDocling-256M-preview", "doctags", "256M", "CDLA-Permissive-2.0",
               "DocTags: structure, tables, boxes", use="granite-docling's predecessor"),
    Checkpoint("lightonocr", "lightonai/LightOnOCR-2-1B", "lighton_ocr", "1.0B", "Apache-2.0",
               "Markdown, HTML tables, LaTeX", "olmOCR-bench 83.2 (LightOnOCR-2 paper, arXiv 2601.14251)",
               use="the most accurate ~1B page reader"),
    Checkpoint("lightonocr-bbox", "lightonai/LightOnOCR-2-1B-bbox", "lighton_ocr", "1.0B", "Apache-2.0",
               "Markdown with figure boxes", use="LightOnOCR-2 that also boxes each figure"),
    Checkpoint("paddleocr-vl", "PaddlePaddle/PaddleOCR-VL-1.5", "paddleocr_vl", "0.9B", "Apache-2.0",
               "text, tables, formulas, charts by --task", "OmniDocBench v1.5 94.5 (PaddleOCR-VL-1.5 paper, "
               "arXiv 2601.21957)", use="elements: a table, a formula, a chart (--task)"),
    Checkpoint("glm-ocr", "zai-org/GLM-OCR", "glm_ocr", "1.1B", "MIT", "Markdown, LaTeX, tables by --task",
               "OmniDocBench v1.5 94.62 (GLM-OCR paper, arXiv 2603.10910)", use="text, formulas and tables"),
    Checkpoint("olmocr", "allenai/olmOCR-2-7B-1025", "olmocr2", "8.3B", "Apache-2.0",
               "Markdown, HTML tables, LaTeX; front matter (language, rotation, table, diagram)",
               "olmOCR-bench 82.4 (olmOCR-2 card, FP8)", use="long, hard documents on a GPU"),
    Checkpoint("nanonets-ocr", "nanonets/Nanonets-OCR2-3B", "nanonets_ocr2", "3.75B", "not stated in the card",
               "Markdown, HTML tables, LaTeX, tagged signatures, watermarks, page numbers",
               use="forms: checkboxes, signatures, watermarks"),
    Checkpoint("deepseek-ocr", "deepseek-community/DeepSeek-OCR-2", "deepseek_ocr2", "3B (MoE)",
               "not stated in the card", "Markdown with a box per block",
               "OmniDocBench v1.5 91.09 (DeepSeek-OCR-2 report)", use="a box for every block"),
    Checkpoint("granite-docling-v2", "ibm-granite/granite-for-docling-500m", "granite_docling", "0.5B",
               "Apache-2.0", "DocLang: structure and boxes", use="Docling's newer structure model"),
    Checkpoint("qwen3-vl", "Qwen/Qwen3-VL-2B-Instruct", "qwen3_vl", "2.1B", "Apache-2.0", "text",
               use="questions about pages (ask) with a general 2B model"),
)
BY_ALIAS = {checkpoint.alias: checkpoint for checkpoint in CHECKPOINTS}

# <!-- begin: catalogue-cpu-cost -->
CPU_COST: dict[str, dict] = {
    'smolvlm-256m': {'page_s': 19.19, 'wall_s': 27.9, 'peak_rss_gb': 1.55, 'floor_share': 0.82},
    'granite-docling': {'page_s': 19.09, 'wall_s': 27.29, 'peak_rss_gb': 1.78, 'floor_share': 1.17},
    'lightonocr': {'page_s': 121.9, 'wall_s': 133.92, 'peak_rss_gb': 5.17, 'floor_share': 0.43},
    'lightonocr-bbox': {'page_s': 121.9, 'wall_s': 133.92, 'peak_rss_gb': 5.17, 'floor_share': 0.43},
    'paddleocr-vl': {'page_s': 281.13, 'wall_s': 292.94, 'peak_rss_gb': 4.61, 'floor_share': 0.58},
    'glm-ocr': {'page_s': 438.49, 'wall_s': 448.44, 'peak_rss_gb': 6.13, 'floor_share': 0.29},
}
CPU_COST_SOURCE = 'benchmarks/families-last-run.txt, float32 on a 2-core AMD EPYC (torch held to AVX2)'
# <!-- end: catalogue-cpu-cost -->
