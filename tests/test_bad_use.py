"""What a bad-input probe found (issue 32), one test per case: the command, the exit code from the README's
table, the one-line message, and for the data-loss cases the files and records left as they were."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import draw_page
from vlmcli.cli import app
from vlmcli.errors import ExitCode
from vlmcli.jobs import manifest
from vlmcli.jobs import ocr as ocr_job
from vlmcli.jobs.folder import OutputFolder
from vlmcli.pipeline.results import PageResult

runner = CliRunner()
AS_NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []


def _cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _one_error_line(stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if line.startswith("vlmcli: error:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _fake_transcribe(seen: list):
    """`transcribe` without a model: records the documents it was given, one page of text each."""
    def transcribe(inputs, instruction, run, *, pages=None, progress=None, reuse=None, on_plan=None, **kwargs):
        from vlmcli.inputs.documents import PageRef

        seen.append(list(inputs))
        if on_plan is not None:
            on_plan([PageRef(path, 0, 1, False) for path in inputs])
        for path in inputs:
            yield PageResult(path, 1, f"text of {path.name}", 64, 3, 0.1, "stop")
    return transcribe


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# 1-4: data loss


def test_1_an_output_never_replaces_an_input(monkeypatch, tmp_path):
    folder = tmp_path / "clob"
    folder.mkdir()
    draw_page().save(folder / "a.pdf", "PDF")
    draw_page(text="the user's own file").save(folder / "a.pdf.pdf", "PDF")
    before = _snapshot(folder)
    monkeypatch.setattr(ocr_job, "transcribe", _fake_transcribe([]))
    refused = _cli("ocr", folder, "-f", "pdf", "-o", folder)
    assert refused.exit_code == ExitCode.output  # the folder holds files vlmcli did not write
    _one_error_line(refused.stderr, "holds files vlmcli did not write")
    forced = _cli("ocr", folder, "-f", "pdf", "-o", folder, "--force")
    assert forced.exit_code == ExitCode.usage  # even --force never writes over an input
    _one_error_line(forced.stderr, "a.pdf.pdf: is one of the inputs")
    assert {name: data for name, data in _snapshot(folder).items() if not name.startswith(".")} == before


def test_1_outputs_inside_an_input_folder_are_never_read_back(monkeypatch, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    draw_page().save(inbox / "small.png")
    seen: list[list[Path]] = []
    monkeypatch.setattr(ocr_job, "transcribe", _fake_transcribe(seen))
    assert _cli("ocr", inbox, "-f", "pdf", "-o", inbox / "out").exit_code == 0
    assert (inbox / "out" / "small.png.pdf").is_file()
    assert _cli("ocr", inbox, "-f", "pdf", "-o", inbox / "out", "--resume").exit_code == 0
    assert _cli("ocr", inbox, "-f", "pdf", "-o", inbox / "out2").exit_code == 0  # another run, another folder
    assert seen == [[inbox / "small.png"], [inbox / "small.png"], [inbox / "small.png"]]


def test_2_finetune_refuses_a_folder_holding_other_files(tmp_path):
    output = tmp_path / "project"
    output.mkdir()
    (output / "README.md").write_text("my notes")
    (tmp_path / "d.jsonl").write_text("{}\n")
    result = _cli("finetune", "--stage", "1", "--data", tmp_path / "d.jsonl", "-o", output, "--offline")
    assert result.exit_code == ExitCode.output
    _one_error_line(result.stderr, "already holds files, such as README.md")
    assert _snapshot(output) == {"README.md": b"my notes"}


def test_3_a_rerun_without_resume_keeps_the_manifest(monkeypatch, tmp_path):
    page = tmp_path / "p.png"
    draw_page().save(page)
    monkeypatch.setattr(ocr_job, "transcribe", _fake_transcribe([]))
    out = tmp_path / "out"
    assert _cli("ocr", page, "-o", out).exit_code == 0
    written = (out / manifest.MANIFEST_NAME).read_bytes()
    again = _cli("ocr", page, "-o", out)
    assert again.exit_code == ExitCode.output
    _one_error_line(again.stderr, "holds the manifest of an earlier run", "--resume", "--force")
    assert (out / manifest.MANIFEST_NAME).read_bytes() == written
    assert _cli("ocr", page, "-o", out, "--force").exit_code == 0
    backups = manifest.backup_paths(out)
    assert len(backups) == 1 and backups[0].read_bytes() == written  # --force keeps the old one


def test_4_two_runs_into_one_folder_at_once(monkeypatch, tmp_path):
    page = tmp_path / "p.png"
    draw_page().save(page)
    monkeypatch.setattr(ocr_job, "transcribe", _fake_transcribe([]))
    out = tmp_path / "out"
    assert _cli("ocr", page, "-o", out).exit_code == 0
    recorded = (out / manifest.MANIFEST_NAME).read_bytes()
    running = OutputFolder(out, None, resume=True, force=False)  # another run holds the folder
    try:
        second = _cli("ocr", page, "-o", out, "--resume")
        assert second.exit_code == ExitCode.output
        _one_error_line(second.stderr, "another vlmcli run is writing into this folder")
        shard = _cli("ocr", page, "-o", out, "--resume", "--shard", "1/2")  # shards lock their own manifests
        assert shard.exit_code == 0, shard.output
    finally:
        running.release()
    assert (out / manifest.MANIFEST_NAME).read_bytes() == recorded


def test_4_the_lock_is_released_when_a_run_is_killed(tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from vlmcli.jobs.folder import OutputFolder; "
                               "f = OutputFolder(Path(sys.argv[1]), None, resume=True, force=False); "
                               "print('held', flush=True); time.sleep(600)", str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Exception, match="another vlmcli run"):
            OutputFolder(out, None, resume=True, force=False)
    finally:
        holder.kill()
        holder.wait()
    OutputFolder(out, None, resume=True, force=False).release()  # SIGKILL released it


# 5-6: silently wrong


@pytest.mark.parametrize("option", [["--learning-rate", "inf"], ["--learning-rate", "nan"], ["--epochs", "-1"],
                                    ["--max-steps", "0"], ["--lora-dropout", "2"], ["--replay", "1"]])
def test_5_nonsensical_hyperparameters_are_refused_before_anything(tmp_path, option):
    result = _cli("finetune", "--stage", "1", "--data", tmp_path / "d.jsonl", "-o", tmp_path / "o", *option)
    assert result.exit_code == ExitCode.usage
    _one_error_line(result.stderr)
    assert not (tmp_path / "o").exists()


def test_5_a_config_file_is_held_to_the_same_ranges(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("learning_rate = inf\n")
    result = _cli("finetune", "--stage", "1", "--config", config, "--show-config")
    assert result.exit_code == ExitCode.usage
    _one_error_line(result.stderr, "learning_rate = inf is out of range")


def test_5_an_update_that_makes_the_weights_non_finite_stops_training():
    import torch
    from vlmcli.finetune.train import NonFinite, _Callbacks

    from vlmcli.progress import NullProgress

    layer = torch.nn.Linear(2, 2)
    callbacks = _Callbacks(NullProgress(), {})
    state = type("State", (), {"global_step": 1, "is_world_process_zero": True})()
    callbacks.on_step_end(None, state, None, model=layer)  # finite: goes on
    with torch.no_grad():
        layer.weight[0, 0] = float("inf")
    with pytest.raises(NonFinite, match="non-finite at step 1"):
        callbacks.on_step_end(None, state, None, model=layer)


def _adapter(folder: Path, value: float) -> Path:
    import torch
    from safetensors.torch import save_file

    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": 2}))
    save_file({"base_model.model.x.lora_A.weight": torch.full((2, 4), value)},
              str(folder / "adapter_model.safetensors"))
    return folder


@pytest.mark.model
def test_5_an_adapter_with_non_finite_weights_is_refused(tiny_idefics3, tmp_path):
    bad = _adapter(tmp_path / "diverged", float("inf"))
    result = _cli("ocr", _page(tmp_path), "--model", tiny_idefics3, "--offline", "--adapter", bad)
    assert result.exit_code == ExitCode.model
    _one_error_line(result.stderr, "non-finite weights")


@pytest.mark.model
def test_6_eval_fails_when_its_examples_fail(tiny_idefics3, tmp_path):
    (tmp_path / "not-an-image.png").write_text("hello")
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"image": "not-an-image.png", "question": "q", "answer": "a"}) + "\n")
    failing = _cli("eval", "--data", data, "--model", tiny_idefics3, "--offline", "--max-new-tokens", "2")
    assert failing.exit_code == ExitCode.input  # every example failed: the error's own code
    assert json.loads(failing.stdout)["overall"]["errors"] == 1
    allowed = _cli("eval", "--data", data, "--model", tiny_idefics3, "--offline", "--max-new-tokens", "2",
                   "--allow-failures", "1")
    assert allowed.exit_code == 0


# 7: hangs


@pytest.mark.parametrize("command", [["ocr"], ["ask", "what is it?"]])
def test_7_a_fifo_on_the_command_line_is_refused_at_once(tmp_path, command):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    args = ["ocr", str(fifo)] if command == ["ocr"] else ["ask", str(fifo), command[1]]
    result = subprocess.run([sys.executable, "-m", "vlmcli", *args, "--offline"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == ExitCode.input
    _one_error_line(result.stderr, "not a regular file")


# 8-10: tracebacks, exit codes and hints


def _page(tmp_path: Path) -> Path:
    path = tmp_path / "page.png"
    draw_page().save(path)
    return path


@pytest.mark.parametrize("option", [["--max-new-tokens", "1000000000"], ["--max-new-tokens", "99999999999999999999"],
                                    ["--page-timeout", "inf"], ["--page-timeout", "nan"]])
def test_8_out_of_range_run_options(tmp_path, option):
    result = _cli("ocr", _page(tmp_path), "--offline", *option)
    assert result.exit_code == ExitCode.usage
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.model
def test_8_max_new_tokens_is_held_to_the_models_context(tiny_idefics3, tmp_path):
    result = _cli("ocr", _page(tmp_path), "--model", tiny_idefics3, "--offline", "--max-new-tokens", "1048576")
    assert result.exit_code == ExitCode.usage
    _one_error_line(result.stderr, "beyond the model's context of 2048 tokens")


@pytest.mark.parametrize("command", ["finetune", "eval"])
def test_8_a_data_file_that_is_not_utf8(tmp_path, command):
    data = tmp_path / "d.jsonl"
    data.write_bytes(b'{"image": "a.png", "text": "caf\xe9"}\n')
    args = ["finetune", "--stage", "1", "-o", tmp_path / "o"] if command == "finetune" else ["eval"]
    result = _cli(*args, "--data", data, "--offline")
    assert result.exit_code == ExitCode.input
    _one_error_line(result.stderr, "line 1: not UTF-8 text")


def test_8_output_paths_that_are_files(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("a file")
    (tmp_path / "d.jsonl").write_text("{}\n")
    trained = _cli("finetune", "--stage", "1", "--data", tmp_path / "d.jsonl", "-o", taken)
    assert trained.exit_code == ExitCode.output
    _one_error_line(trained.stderr, "is not a folder")
    exported = _cli("export", "--adapter", tmp_path / "no-adapter", "-o", taken)
    assert exported.exit_code == ExitCode.output
    _one_error_line(exported.stderr, "is a file")
    assert taken.read_text() == "a file"


@pytest.mark.parametrize("source, message", [("d.jsonl:inf", "weight = inf is out of range"),
                                             ("d.jsonl:abc", "the weight after the colon, 'abc', is not a number")])
def test_8_and_14_data_weights(tmp_path, monkeypatch, source, message):
    monkeypatch.chdir(tmp_path)
    Path("d.jsonl").write_text("{}\n")
    result = _cli("finetune", "--stage", "1", "--data", source, "-o", "o")
    assert result.exit_code == ExitCode.usage
    _one_error_line(result.stderr, message)


def test_8_failure_report_that_cannot_be_written(monkeypatch, tmp_path):
    page = _page(tmp_path)
    monkeypatch.setattr(ocr_job, "transcribe", _fake_transcribe([]))
    folder = _cli("ocr", page, "--failure-report", tmp_path)
    assert folder.exit_code == ExitCode.output
    _one_error_line(folder.stderr, "is a folder")
    unwritable = _cli("ocr", page, "--failure-report", "/proc/version/report.jsonl")
    assert unwritable.exit_code == ExitCode.output
    _one_error_line(unwritable.stderr, "/proc/version: is not a folder", "--failure-report needs a folder")


@pytest.mark.skipif(os.geteuid() == 0 and not shutil.which("setpriv"), reason="needs setpriv to drop root")
def test_8_and_10_unreadable_files_as_another_user():
    root = Path(tempfile.mkdtemp(prefix="vlmcli-unreadable-"))  # pytest's own folders are its owner's only
    try:
        root.chmod(0o777)
        page = _page(root)
        page.chmod(0o000)
        out = root / "out"
        out.mkdir(mode=0o777)
        (out / manifest.MANIFEST_NAME).write_text("")
        (out / manifest.MANIFEST_NAME).chmod(0o000)
        command = [*AS_NOBODY, sys.executable, "-m", "vlmcli"]
        environment = {**os.environ, "VLMCLI_CACHE_DIR": str(root / "cache"), "HOME": str(root),
                       "HF_HOME": str(root / "hf")}
        unreadable_input = subprocess.run([*command, "ocr", str(page), "--offline"], capture_output=True, text=True,
                                          env=environment, cwd=root)
        assert unreadable_input.returncode == ExitCode.input
        _one_error_line(unreadable_input.stderr, "cannot be read")
        status = subprocess.run([*command, "status", str(out)], capture_output=True, text=True, env=environment,
                                cwd=root)
        assert status.returncode == ExitCode.input
        _one_error_line(status.stderr, "cannot be read")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_8_status_skips_a_manifest_line_of_the_wrong_types(tmp_path):
    path = tmp_path / manifest.MANIFEST_NAME
    path.write_text(json.dumps({"v": 1, "plan": {"pages": 5, "failed_inputs": [], "shard": None}}) + "\n"
                    + json.dumps({"v": 1, "plan": {"pages": ["k1"], "failed_inputs": [], "shard": None}}) + "\n")
    result = _cli("status", tmp_path, "-f", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["total"]["planned"] == 1 and report["dropped_lines"] == 1


def test_8_stdout_closed(tmp_path):
    result = subprocess.run(f"{sys.executable} -m vlmcli ocr {_page(tmp_path)} --offline >&-", shell=True,
                            capture_output=False, stderr=subprocess.PIPE, text=True)
    assert result.returncode == ExitCode.output
    _one_error_line(result.stderr, "stdout is closed")


@pytest.mark.model
def test_9_a_pickle_that_holds_more_than_weights_is_refused(tiny_idefics3, tmp_path):
    checkpoint = tmp_path / "pickled"
    shutil.copytree(tiny_idefics3, checkpoint)
    (checkpoint / "model.safetensors").unlink()
    planted = tmp_path / "planted"
    (checkpoint / "pytorch_model.bin").write_bytes(_evil_pickle(planted))
    result = _cli("ocr", _page(tmp_path), "--model", checkpoint, "--offline", "--allow-pickle")
    assert result.exit_code == ExitCode.refused
    _one_error_line(result.stderr, "hold more than tensors")
    assert not planted.exists()  # its code never ran


def _evil_pickle(planted: Path) -> bytes:
    import pickle

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {planted}",))

    return pickle.dumps({"weight": Payload()})


def test_9_an_adapter_with_only_pickle_weights_needs_allow_pickle(tmp_path):
    from vlmcli.errors import RefusedError
    from vlmcli.model.adapters import adapter_chain

    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "adapter_config.json").write_text("{}")
    import torch

    torch.save({"base_model.model.x.lora_A.weight": torch.zeros(2, 2)}, folder / "adapter_model.bin")
    with pytest.raises(RefusedError, match="only in pickle format"):
        adapter_chain(folder)
    assert adapter_chain(folder, allow_pickle=True) == [folder]


@pytest.mark.model
@pytest.mark.parametrize("damage", ["broken config", "no weights"])
def test_10_a_broken_local_checkpoint_is_a_model_error(tiny_idefics3, tmp_path, damage):
    checkpoint = tmp_path / "model"
    shutil.copytree(tiny_idefics3, checkpoint)
    if damage == "broken config":
        (checkpoint / "config.json").write_text("{broken")
    else:
        (checkpoint / "model.safetensors").unlink()
    result = _cli("ocr", _page(tmp_path), "--model", checkpoint, "--offline")
    assert result.exit_code == ExitCode.model
    _one_error_line(result.stderr, "not a loadable checkpoint folder")


# 11-14


def test_11_markdown_comments_cannot_be_closed_by_a_file_name(tmp_path):
    from html.parser import HTMLParser

    from vlmcli.jobs.outputs import render
    from vlmcli.specs import OutputFormat

    name = "x --> <script>alert(1)</script> --!> y.png"
    text = render(PageResult(tmp_path / name, 1, "body", 1, 1, 0.1, "stop"), OutputFormat.markdown, True)

    class Tags(HTMLParser):
        comments, tags = [], []

        def handle_comment(self, data):
            self.comments.append(data)

        def handle_starttag(self, tag, attrs):
            self.tags.append(tag)

    parser = Tags()
    parser.feed(text)
    assert len(parser.comments) == 1 and parser.tags == [] and "page 1" in parser.comments[0]


def test_12_cache_info_changes_nothing_and_clear_says_when_empty(tmp_path, monkeypatch):
    monkeypatch.setenv("VLMCLI_CACHE_DIR", str(tmp_path))
    assert "nothing to remove" in _cli("cache", "clear").stdout
    (tmp_path / "pages.sqlite3").write_bytes(b"not a database at all")
    before = _snapshot(tmp_path)
    info = _cli("cache", "info")
    assert info.exit_code == 0 and "problem: damaged" in info.stdout
    assert _snapshot(tmp_path) == before


def test_13_the_password_never_reaches_a_command_line(pdf_3_pages, tmp_path, monkeypatch):
    pikepdf = pytest.importorskip("pikepdf")
    from vlmcli.inputs import child

    encrypted = tmp_path / "locked.pdf"
    with pikepdf.open(pdf_3_pages) as document:
        document.save(encrypted, encryption=pikepdf.Encryption(user="s3cret-pw", owner="owner", R=6))
    command_lines: list[list[str]] = []
    real = child.run_child
    monkeypatch.setattr(child, "run_child", lambda argv, *a, **kw: command_lines.append(argv) or real(argv, *a, **kw))
    for module in ("vlmcli.inputs.poppler", "vlmcli.inputs.pdfium"):
        monkeypatch.setattr(f"{module}.run_child", child.run_child)
    from vlmcli.inputs.documents import page_refs
    from vlmcli.inputs.pages import page_images
    from vlmcli.specs import PdfSpec, SplitSpec

    spec = PdfSpec(password="s3cret-pw")
    refs = page_refs(encrypted, None, spec)
    assert len(refs) == 3 and page_images(refs[0], 512, SplitSpec(), spec)
    assert command_lines and not any("s3cret-pw" in " ".join(argv) for argv in command_lines)
    poppler_only = _cli("ocr", encrypted, "--password", "s3cret-pw", "--pdf-renderer", "poppler")
    assert poppler_only.exit_code == ExitCode.usage
    _one_error_line(poppler_only.stderr, "cannot take --password safely")


def test_14_messages_that_say_what_is_wrong(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("empty.pdf").write_bytes(b"")
    Path("fake.pdf").write_bytes(b"<html>not a pdf</html>")
    os.symlink("loop-b", "loop-a")
    os.symlink("loop-a", "loop-b")
    for path, message in [("empty.pdf", "is empty (0 bytes)"), ("fake.pdf", "is named .pdf but is not a PDF"),
                          ("loop-a", "a loop of symbolic links")]:
        result = _cli("ocr", path, "--offline")
        assert result.exit_code == ExitCode.input, result.output
        _one_error_line(result.stderr, message)
    no_question = _cli("ask", "three.pdf")
    assert no_question.exit_code == ExitCode.usage
    _one_error_line(no_question.stderr, "ask needs files and then a question; only 'three.pdf' was given")
    dev_null = _cli("ocr", "empty.pdf", "-o", "/dev/null")
    assert dev_null.exit_code == ExitCode.output
    _one_error_line(dev_null.stderr, "/dev/null: is not a folder")
    no_pages = _cli("ocr", "empty.pdf", "--pages", "")
    assert no_pages.exit_code == ExitCode.usage


def test_14_an_interrupted_ask_does_not_suggest_resume(capsys):
    import typer

    from vlmcli.cli.exits import reporting_errors

    with pytest.raises(typer.Exit):
        with reporting_errors():
            raise KeyboardInterrupt
    interrupted = capsys.readouterr().err
    assert "interrupted" in interrupted and "--resume" not in interrupted
    with pytest.raises(typer.Exit):
        with reporting_errors(resumable=True):
            raise KeyboardInterrupt
    assert "--resume" in capsys.readouterr().err


def test_usage_mistakes_are_one_line(tmp_path):
    result = subprocess.run([Path(sys.executable).parent / "vlmcli", "ocr", "x.png", "--top-kk", "2"],
                            capture_output=True, text=True)
    assert result.returncode == ExitCode.usage
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vlmcli: error: No such option: --top-kk")
    assert lines[0].endswith("(hint: see 'vlmcli ocr --help')")


def test_a_broken_pipe_is_an_output_error():
    code = ("import sys; from vlmcli.cli.exits import run_command\n"
            "def gone(): raise BrokenPipeError(32, 'Broken pipe')\n"
            "sys.exit(run_command(gone, standalone_mode=False))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == ExitCode.output
    _one_error_line(result.stderr, "stdout is closed")
