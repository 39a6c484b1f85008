"""Fonts for synthetic documents: printed and handwriting-style, from Debian packages (Pillow only).

Fonts are found by file name under the usual font folders, so the same names
work on Debian, Ubuntu, or any folder the files were copied into. A fixed set
is held out of training, so that evaluation can ask whether the model reads a
typeface it never saw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from PIL import ImageFont

from tools.synthetic.text import CHARSET

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts")

# (apt package, style, font file names, caps only: lowercase letters are drawn as capitals,
# so text in these fonts is upper-cased before rendering and in the label, or the target would be unreadable)
CATALOGUE: tuple[tuple[str, str, tuple[str, ...], bool], ...] = (
    ("fonts-dejavu-core", "printed", ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf",
                                      "DejaVuSansMono.ttf"), False),
    ("fonts-liberation2", "printed", ("LiberationSans-Regular.ttf", "LiberationMono-Regular.ttf",
                                      "LiberationSerif-Regular.ttf"), False),
    ("fonts-dkg-handwriting", "hand", ("dkg.ttf",), False),
    ("fonts-breip", "hand", ("Breip.ttf",), False),
    ("fonts-dancingscript", "hand", ("DancingScript-Regular.otf",), False),
    # digits and capitals are outlined doodles; lowercase is plain handwriting
    ("fonts-femkeklaver", "hand", ("femkeklaver.ttf",), False),
    ("fonts-humor-sans", "hand", ("Humor-Sans.ttf",), True),
    # six typefaces from children's handwriting; two keep the package from dominating the draw
    ("fonts-bwht", "hand", ("BecauseWeCreate-Regular.otf", "BecauseWeLearn-Regular.otf"), True),
)
# One typeface per style that training never sees; if absent, the style's last font found is held out.
HELD_OUT = ("LiberationSerif-Regular.ttf", "Breip.ttf")
APT_PACKAGES = tuple(package for package, _, _, _ in CATALOGUE)


class FontsMissing(RuntimeError):
    pass


@dataclass(frozen=True)
class Font:
    path: Path
    package: str
    style: str  # "printed" | "hand"
    caps_only: bool = False

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class FontSplit:
    train: tuple[Font, ...]
    heldout: tuple[Font, ...]

    def of(self, style: str, heldout: bool = False) -> tuple[Font, ...]:
        return tuple(font for font in (self.heldout if heldout else self.train) if font.style == style)


def apt_hint() -> str:
    return "install them with: apt-get install -y " + " ".join(APT_PACKAGES)


def find_fonts(dirs: Iterable[Path] = FONT_DIRS) -> tuple[Font, ...]:
    """The catalogue's fonts that are installed and draw every character of CHARSET, in catalogue order."""
    wanted = {name for _, _, names, _ in CATALOGUE for name in names}
    found: dict[str, Path] = {}
    for folder in dirs:
        for path in sorted(Path(folder).rglob("*")) if Path(folder).is_dir() else ():
            if path.name in wanted and path.name not in found:
                found[path.name] = path
    return tuple(Font(found[name], package, style, caps) for package, style, names, caps in CATALOGUE
                 for name in names if name in found and covers_charset(str(found[name])))


@lru_cache(maxsize=64)
def covers_charset(path: str) -> bool:
    """Whether no character of CHARSET falls back to the font's 'missing glyph' box."""
    font = ImageFont.truetype(path, 24)
    missing = _glyph(font, "\ue000")  # a private-use code point: no font here maps it
    return all(_glyph(font, char) != missing for char in CHARSET if char != " ")


def _glyph(font: ImageFont.FreeTypeFont, char: str) -> tuple:
    mask = font.getmask(char)
    return mask.size, bytes(mask)


def split_fonts(fonts: Iterable[Font]) -> FontSplit:
    """Hold out HELD_OUT, or else the last font of a style; a style with one font is not held out."""
    fonts = tuple(fonts)
    heldout = []
    for style in ("printed", "hand"):
        of_style = [font for font in fonts if font.style == style]
        if len(of_style) < 2:
            continue
        preferred = [font for font in of_style if font.name in HELD_OUT]
        heldout.extend(preferred or of_style[-1:])
    return FontSplit(tuple(f for f in fonts if f not in heldout), tuple(heldout))


def require_fonts(dirs: Iterable[Path] = FONT_DIRS) -> FontSplit:
    """The train/held-out split, or a FontsMissing error naming the apt packages."""
    fonts = find_fonts(dirs)
    missing_styles = [style for style in ("printed", "hand") if not any(f.style == style for f in fonts)]
    if missing_styles:
        raise FontsMissing(f"no {' or '.join(missing_styles)} fonts found; {apt_hint()}")
    return split_fonts(fonts)
