"""Images and PDFs: normalization to RGB, and every bad input gets a typed error."""

from __future__ import annotations

import io
import os

import pytest
from conftest import draw_page
from PIL import Image

from vlmcli.errors import DependencyError, EncryptedPdfError, InputError, UsageError
from vlmcli.inputs import documents, images, pages, poppler
from vlmcli.jobs import ocr as ocr_job
from vlmcli.specs import MAX_PDF_DPI, PdfSpec, RunSpec


def _png_bytes(image: Image.Image, fmt="PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    stored = Image.new("RGB", (40, 20), "white")
    loaded = images.load_image_bytes(_png_bytes(stored, "JPEG", exif=exif.tobytes()))
    assert loaded.size == (20, 40)


def test_transparency_goes_onto_white():
    rgba = Image.new("RGBA", (10, 10), (0, 0, 0, 0))
    rgba.putpixel((5, 5), (0, 0, 0, 255))
    loaded = images.load_image_bytes(_png_bytes(rgba))
    assert loaded.mode == "RGB" and loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((5, 5)) == (0, 0, 0)


def test_palette_with_transparency_goes_onto_white():
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    loaded = images.load_image_bytes(_png_bytes(palette, transparency=0))
    assert loaded.getpixel((0, 0)) == (255, 255, 255)


def test_16_bit_grey_is_scaled_not_clamped():
    ramp = Image.new("I;16", (256, 1))
    for x in range(256):
        ramp.putpixel((x, 0), x * 257)
    loaded = images.load_image_bytes(_png_bytes(ramp))
    levels = {loaded.getpixel((x, 0))[0] for x in range(256)}
    assert len(levels) > 200 and loaded.getpixel((0, 0)) == (0, 0, 0)


def test_cmyk_is_converted():
    cmyk = Image.new("CMYK", (4, 4), (0, 0, 0, 0))  # no ink = white paper
    loaded = images.load_image_bytes(_png_bytes(cmyk, "JPEG", quality=95))
    assert loaded.mode == "RGB" and min(loaded.getpixel((1, 1))) > 240


def test_multi_page_tiff_is_a_document(tmp_path):
    path = tmp_path / "scan.tiff"
    frames = [draw_page((50, 50), str(n)) for n in range(3)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    refs = documents.page_refs(path, "2-3", PdfSpec())
    assert [ref.page_number for ref in refs] == [2, 3]
    assert images.load_image(path, 2).size == (50, 50)


def test_animated_gif_reads_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (10, 10), color) for color in ("white", "black")]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert images.count_frames(path) == 1
    assert images.load_image(path).getpixel((0, 0)) == (255, 255, 255)


def test_decompression_bomb_is_refused(monkeypatch):
    data = _png_bytes(Image.new("1", (200, 200)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(InputError, match="larger than 10,000 pixels"):
        images.load_image_bytes(data)


def test_truncated_image_is_an_input_error(tmp_path):
    path = tmp_path / "cut.png"
    data = _png_bytes(draw_page())
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(InputError, match="cut.png: corrupt or truncated image"):
        images.load_image(path)


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 10, b"<html>not an image</html>",
                                     b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"])
def test_non_images_are_refused(tmp_path, content):
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match="fake.png: not a supported image"):
        images.load_image(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(InputError, match="nope.png: no such file"):
        documents.page_refs(tmp_path / "nope.png", None, PdfSpec())
    with pytest.raises(InputError, match="is a directory"):
        documents.page_refs(tmp_path, None, PdfSpec())


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(page_png):
    page_png.chmod(0)
    with pytest.raises(InputError, match="cannot be read"):
        documents.page_refs(page_png, None, PdfSpec())


def test_empty_folder_is_reported(tmp_path):
    (tmp_path / "empty").mkdir()
    assert documents.discover([tmp_path / "empty"]) == [tmp_path / "empty"]
    with pytest.raises(InputError, match="is a directory with no images or PDFs"):
        documents.page_refs(tmp_path / "empty", None, PdfSpec())


def test_discover_walks_folders_in_order(tmp_path):
    (tmp_path / "b").mkdir()
    for name in ("b/2.png", "a.pdf", "notes.txt", "b/1.jpg"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in documents.discover([tmp_path])] == ["a.pdf", "b/1.jpg", "b/2.png"]


def test_pdf_pages_render_at_the_model_resolution(pdf_3_pages):
    refs = documents.page_refs(pdf_3_pages, "2-3", PdfSpec())
    assert [(r.page_index, r.page_number, r.page_count) for r in refs] == [(1, 2, 3), (2, 3, 3)]
    page = pages.load_page(refs[0], max_input_px=800, bands=True, pdf=PdfSpec())
    assert page.mode == "RGB" and max(page.size) == pytest.approx(800, abs=2)


def test_pdf_pages_render_at_most_at_200_dpi_unless_an_edge_is_asked_for(pdf_3_pages):
    """A 4096 px input edge (a Qwen pixel budget's square root) on a 300 x 400 pt page: 200 dpi, not 737; the
    options give the cap, and --longest-edge lifts it."""
    ref = documents.page_refs(pdf_3_pages, "1", PdfSpec())[0]
    assert max(pages.load_page(ref, 4096, True, PdfSpec()).size) == pytest.approx(400 / 72 * 200, abs=2)
    assert max(pages.load_page(ref, 4096, True, PdfSpec(max_dpi=None)).size) == pytest.approx(4096, abs=2)
    assert RunSpec.from_options().pdf.max_dpi == MAX_PDF_DPI == 200
    assert RunSpec.from_options(longest_edge=4096).pdf.max_dpi is None


def test_pdf_page_out_of_range(pdf_3_pages):
    with pytest.raises(UsageError, match="page 7 is past the end"):
        documents.page_refs(pdf_3_pages, "7", PdfSpec())


@pytest.mark.parametrize("content", [b"%PDF-1.4\n%%EOF\n", b"%PDF-1.7\n1 0 obj garbage\n"])
def test_corrupt_pdf(tmp_path, content):
    path = tmp_path / "broken.pdf"
    path.write_bytes(content)
    with pytest.raises(InputError, match="broken.pdf: not a readable PDF"):
        documents.page_refs(path, None, PdfSpec())


@pytest.fixture
def encrypted_pdf(pdf_3_pages, tmp_path):
    pikepdf = pytest.importorskip("pikepdf")
    path = tmp_path / "locked.pdf"
    with pikepdf.open(pdf_3_pages) as document:
        document.save(path, encryption=pikepdf.Encryption(user="s3cret", owner="owner", R=6))
    return path


def test_encrypted_pdf_needs_the_password(encrypted_pdf):
    for password in (None, "wrong"):
        with pytest.raises(EncryptedPdfError, match="locked.pdf: PDF is encrypted"):
            documents.page_refs(encrypted_pdf, None, PdfSpec(password=password))
    refs = documents.page_refs(encrypted_pdf, None, PdfSpec(password="s3cret"))
    page = pages.load_page(refs[0], 400, True, PdfSpec(password="s3cret"))
    assert max(page.size) == pytest.approx(400, abs=2)


def test_owner_only_password_reads_without_one(pdf_3_pages, tmp_path):
    pikepdf = pytest.importorskip("pikepdf")
    path = tmp_path / "owner.pdf"
    with pikepdf.open(pdf_3_pages) as document:
        document.save(path, encryption=pikepdf.Encryption(user="", owner="owner", R=6))
    assert len(documents.page_refs(path, None, PdfSpec())) == 3


def test_missing_poppler_is_a_dependency_error(pdf_3_pages, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(DependencyError, match="poppler"):
        poppler.page_count(pdf_3_pages, PdfSpec())


# --- More of the checklist (docs/reliability.md): each a bad input with its message -------------------------


def test_bomb_in_the_warning_zone_and_in_a_later_tiff_frame(monkeypatch, tmp_path):
    """I2: 1x-2x over the limit is refused like a bomb. I3: a later frame over the limit fails that page only."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100 * 100)
    with pytest.raises(InputError, match="larger than 10,000 pixels"):
        images.load_image_bytes(_png_bytes(Image.new("L", (120, 120))))  # 14,400 px: a warning in Pillow
    path = tmp_path / "frames.tiff"
    Image.new("L", (50, 50), 255).save(path, save_all=True, append_images=[Image.new("L", (150, 150))])
    assert images.load_image(path, 0).size == (50, 50)
    with pytest.raises(InputError, match="frames.tiff: image is larger than 10,000 pixels"):
        images.load_image(path, 1)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_jpeg_and_png(tmp_path, fmt):
    """I4: the last 30 % cut off."""
    path = tmp_path / f"cut.{fmt.lower()}"
    data = _png_bytes(draw_page((300, 200)), fmt)
    path.write_bytes(data[: len(data) * 7 // 10])
    with pytest.raises(InputError, match="corrupt or truncated image"):
        images.load_image(path)


@pytest.mark.parametrize("content", [b"8BPS\x00\x01" + b"\x00" * 40, b"SIMPLE  =                    T" + b" " * 50])
def test_psd_and_fits_renamed_png_never_reach_their_parsers(tmp_path, content, monkeypatch):
    """I6: formats off the allow-list are refused by magic bytes, before any of their code runs."""
    from PIL import FitsImagePlugin, PsdImagePlugin

    for plugin in (PsdImagePlugin.PsdImageFile, FitsImagePlugin.FitsImageFile):
        monkeypatch.setattr(plugin, "_open", lambda self: pytest.fail("a disallowed parser ran"))
    path = tmp_path / "photo.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match="photo.png: not a supported image"):
        images.load_image(path)


def test_malformed_exif_keeps_the_page(monkeypatch):
    """I7: Pillow's EXIF parser has raised ZeroDivisionError, SyntaxError, IndexError; the pixels stay."""
    from PIL import ImageOps

    for error in (ZeroDivisionError, SyntaxError, IndexError):
        monkeypatch.setattr(ImageOps, "exif_transpose", lambda image, error=error: (_ for _ in ()).throw(error()))
        assert images.load_image_bytes(_png_bytes(Image.new("RGB", (40, 20), "white"), "JPEG")).size == (40, 20)


def test_exif_orientation_8_and_la_mode():
    exif = Image.Exif()
    exif[0x0112] = 8
    loaded = images.load_image_bytes(_png_bytes(Image.new("RGB", (40, 20), "white"), "JPEG", exif=exif.tobytes()))
    assert loaded.size == (20, 40)
    la = Image.new("LA", (4, 4), (0, 0))
    assert images.load_image_bytes(_png_bytes(la)).getpixel((0, 0)) == (255, 255, 255)


def test_multi_frame_files_do_not_leak_file_descriptors(tmp_path):
    """I11: multi-frame images keep their file open for seek(); 200 loads must not leave 200 open files."""
    tiff, gif = tmp_path / "scan.tiff", tmp_path / "anim.gif"
    frames = [Image.new("L", (20, 20), shade) for shade in (0, 128, 255)]
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    frames[0].save(gif, save_all=True, append_images=frames[1:] * 60)  # 181 frames
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(100):
        documents.page_refs(tiff, None, PdfSpec())
        images.load_image(tiff, 2)
        documents.page_refs(gif, None, PdfSpec())
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_path_problems(tmp_path):
    """I13: a symlink loop, and names with spaces, unicode and a leading dash."""
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(InputError, match="loop.png"):
        documents.page_refs(loop, None, PdfSpec())
    for name in ("scan 1.png", "écrit ✓.png", "-dash.png"):
        draw_page((40, 30)).save(tmp_path / name)
        assert len(documents.page_refs(tmp_path / name, None, PdfSpec())) == 1


def test_leading_dash_name_after_double_dash(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from vlmcli.cli import app

    monkeypatch.chdir(tmp_path)
    draw_page((40, 30)).save("-dash.png")
    seen = []
    monkeypatch.setattr(ocr_job, "transcribe", lambda inputs, *a, **kw: seen.extend(inputs) or iter([]))
    assert CliRunner().invoke(app, ["ocr", "--", "-dash.png"]).exit_code == 0
    assert [p.name for p in seen] == ["-dash.png"]


@pytest.mark.parametrize("revision", [4, 6])
def test_encrypted_pdf_aes_revisions(pdf_3_pages, tmp_path, revision):
    """P1 at AES-128 (R=4) and AES-256 (R=6): no password and a wrong one are exit 4, the right one reads."""
    pikepdf = pytest.importorskip("pikepdf")
    path = tmp_path / "locked.pdf"
    with pikepdf.open(pdf_3_pages) as document:
        document.save(path, encryption=pikepdf.Encryption(user="pw", owner="own", R=revision))
    for password in (None, "nope"):
        with pytest.raises(EncryptedPdfError, match="--password|password is missing or wrong"):
            documents.page_refs(path, None, PdfSpec(password=password))
    assert len(documents.page_refs(path, None, PdfSpec(password="pw"))) == 3


def test_truncated_pdf_and_zero_pages(pdf_3_pages, tmp_path):
    """P2: the last 30 % (xref, trailer) cut off; P6: a PDF with no pages."""
    pikepdf = pytest.importorskip("pikepdf")
    cut = tmp_path / "cut.pdf"
    data = pdf_3_pages.read_bytes()
    cut.write_bytes(data[: len(data) * 7 // 10])
    try:
        refs = documents.page_refs(cut, None, PdfSpec())  # poppler may rebuild the xref and recover pages
        for ref in refs:
            try:
                pages.load_page(ref, 64, True, PdfSpec())
            except InputError:
                pass  # a damaged page is an input error, never a traceback
    except InputError as error:
        assert "cut.pdf" in error.message
    empty = tmp_path / "empty.pdf"
    pikepdf.new().save(empty)
    with pytest.raises(InputError, match="empty.pdf: PDF has no pages"):
        documents.page_refs(empty, None, PdfSpec())


def test_enormous_mediabox_and_a_page_without_contents(tmp_path):
    """P3: 200 x 200 in, and a 200-in strip; the render stays within the model's input. P6: no /Contents."""
    pikepdf = pytest.importorskip("pikepdf")
    path = tmp_path / "huge.pdf"
    document = pikepdf.new()
    for box in ([0, 0, 14400, 14400], [0, 0, 72, 14400], [0, 0, 612, 792]):
        document.add_blank_page(page_size=(box[2], box[3]))
    if "/Contents" in document.pages[2].obj:
        del document.pages[2].obj["/Contents"]
    document.save(path)
    refs = documents.page_refs(path, None, PdfSpec())
    sizes = [pages.load_page(ref, 512, True, PdfSpec()).size for ref in refs]
    assert max(sizes[0]) <= 513 and sizes[1][0] <= 513 and sizes[1][1] * sizes[1][0] <= 512 * 512 * 40
    assert images.to_rgb(pages.load_page(refs[2], 512, True, PdfSpec())).getextrema() == ((255, 255),) * 3
