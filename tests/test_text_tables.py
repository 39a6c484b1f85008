"""A text-writing family's tables as `--tables` CSV (jobs/text_tables.py, jobs/renderings.TextTables): the HTML,
OTSL and Markdown pipe tables of a page (pure), and `vlmcli ocr --tables` on a tiny DeepSeek-OCR-2 checkpoint whose
page answer holds a table among its grounding tags."""

from __future__ import annotations

import json

import pytest
from conftest import draw_page
from typer.testing import CliRunner

from vlmcli.cli import app
from vlmcli.jobs.text_tables import MAX_SPAN, find_tables, to_csv


def test_html_spans_repeat_the_cell_in_every_row_and_column_they_cover():
    page = ("<table><thead><tr><th rowspan='2'>Item</th><th colspan=\"2\">Year</th></tr>"
            "<tr><th>2023</th><th>2024</th></tr></thead>"
            "<tbody><tr><td>Sales</td><td rowspan=2>10</td><td>12</td></tr><tr><td>Costs</td><td>8</td></tr>"
            "</tbody></table>")
    assert find_tables(page) == [[["Item", "Year", "Year"], ["Item", "2023", "2024"], ["Sales", "10", "12"],
                                  ["Costs", "10", "8"]]]


def test_html_cells_keep_their_words_without_the_tags_inside():
    page = "<table><tr><td><b>Net</b> &amp; <i>gross</i></td><td>1<br/>2</td><td>  a \n b </td></tr></table>"
    assert find_tables(page) == [[["Net & gross", "1\n2", "a b"]]]


def test_html_a_table_cut_off_by_the_token_limit_ends_where_the_text_does():
    page = "<table><tr><td>Name<td>Total<tr><td>Tea</td><td>4.50</td></tr><tr><td>Cake<td>3.2<"
    assert find_tables(page) == [[["Name", "Total"], ["Tea", "4.50"], ["Cake", "3.2"]]]


def test_html_a_table_inside_a_cell_is_a_table_of_its_own_and_ragged_rows_are_padded():
    page = "<table><tr><td>a <table><tr><td>inner</td></tr></table> b</td><td>c</td></tr><tr><td>d</td></tr></table>"
    assert find_tables(page) == [[["a b", "c"], ["d", ""]], [["inner"]]]


def test_html_spans_beyond_reason_are_bounded():
    page = ('<table><tr><td rowspan="0" colspan="99999">x</td><td colspan="5">lost</td></tr>'
            '<tr><td>y</td></tr></table>')
    (table,) = find_tables(page)
    assert [len(row) for row in table] == [MAX_SPAN] * 2 and "lost" not in table[0]
    assert table[1] == ["x"] * MAX_SPAN  # the span to the table's end fills the second row; y has no room


def test_markdown_pipe_tables_are_found_by_their_delimiter_row():
    page = ("Intro\n| Item | Price \\| EUR |\n|:---|---:|\n| **Tea** | `4.50` |\n| Cake |\n\n"
            "| not | a table |\n| no delimiter row |\n")
    assert find_tables(page) == [[["Item", "Price | EUR"], ["Tea", "4.50"], ["Cake", ""]]]


def test_otsl_cells_continue_left_and_up():
    page = "<fcel>A<lcel><fcel>B<nl><ucel><xcel><ecel><nl><ched>1<fcel>2<fcel>3<nl>"
    assert find_tables(page) == [[["A", "A", "B"], ["A", "A", ""], ["1", "2", "3"]]]


def test_tables_are_numbered_in_page_order_whatever_their_syntax():
    page = "| a | b |\n|---|---|\n| 1 | 2 |\n\n<table><tr><td>html</td></tr></table>\n\n<fcel>otsl<nl>\n"
    assert find_tables(page) == [[["a", "b"], ["1", "2"]], [["html"]], [["otsl"]]]
    assert find_tables("<table></table> and <table><tr><td></td></tr></table>") == []  # no words, no table


def test_csv_quotes_as_rfc_4180_says():
    assert to_csv([["a,b", 'say "hi"'], ["1\n2", ""]]) == '"a,b","say ""hi"""\n"1\n2",\n'


TABLE_ANSWER = ("<|ref|>title<|/ref|><|det|>[[10, 10, 500, 60]]<|/det|>\n# Prices\n\n"
                "<|ref|>table<|/ref|><|det|>[[10, 100, 900, 400]]<|/det|>\n"
                "<table><tr><th>Item</th><th>Price</th></tr><tr><td>Tea</td><td>4.50</td></tr></table>\n\n"
                "| Total | 4.50 |\n|---|---|\n")


@pytest.mark.model
def test_ocr_writes_a_text_familys_tables_as_csv_and_resumes_them(tiny_checkpoint, tmp_path, monkeypatch):
    """DeepSeek-OCR-2 writes an HTML table among its grounding tags, then a Markdown one: both become CSV files
    named as a DocTags model's, -f json keeps the page's record, the plan records the tables folder, and a resumed
    run writes the same files without reading the page."""
    from vlmcli import model
    from vlmcli.model import generate
    from vlmcli.model.generate import Generation

    monkeypatch.setattr(generate, "generate_from_inputs", lambda *args, **kwargs: Generation(
        text=TABLE_ANSWER, token_ids=(1, 2), image_tokens=12, prompt_tokens=40, new_tokens=2, seconds=0.01,
        finish_reason="stop"))
    page = tmp_path / "menu.png"
    draw_page((300, 400), "Tea 4.50").save(page)
    tables, out = tmp_path / "tables", tmp_path / "out"
    args = ["ocr", page, "-f", "json", "-o", out, "--tables", tables, "--model", tiny_checkpoint("deepseek_ocr2"),
            "--offline", "--dtype", "float32", "--max-new-tokens", "4"]
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    assert (tables / "menu.png.p1.t1.csv").read_text() == "Item,Price\nTea,4.50\n"
    assert (tables / "menu.png.p1.t2.csv").read_text() == "Total,4.50\n"
    assert sorted(path.name for path in tables.iterdir()) == ["menu.png.p1.t1.csv", "menu.png.p1.t2.csv"]
    record = json.loads((out / "menu.png.jsonl").read_text())
    assert record["raw_text"] == TABLE_ANSWER and [box["label"] for box in record["boxes"]] == ["title", "table"]
    plan = next(json.loads(line) for line in (out / ".vlmcli-manifest.jsonl").read_text().splitlines()
                if "plan" in line)
    assert plan["plan"]["tables"] == str(tables.resolve())
    (tables / "menu.png.p1.t1.csv").unlink()
    monkeypatch.setattr(model, "load", lambda *a, **kw: pytest.fail("the resumed run loaded the model"))
    again = CliRunner().invoke(app, [str(arg) for arg in [*args, "--resume"]])
    assert again.exit_code == 0, again.output
    assert (tables / "menu.png.p1.t1.csv").read_text() == "Item,Price\nTea,4.50\n"
