"""Make assets/fonts/subspace-lab-chi.ttf: the one glyph χ (U+03C7) of DejaVu Sans ExtraLight 2.37
(Debian's fonts-dejavu-extra), renamed "Subspace Lab Chi" as the Bitstream Vera licence asks of a
modified font, with its line metrics set to those of egui's Ubuntu Light.

Why: egui's text font (Ubuntu Light) draws χ exactly like a Latin x, which reads as the toy's
coordinate x. The app puts this font first in its proportional family (egui takes each glyph
from the first font that has it, so only χ comes from here) and the PNGs set χ in it; the line
metrics match Ubuntu Light's because egui takes a family's row height from its first font.

Run: pip install fonttools; python3 scripts/make_chi_font.py UBUNTU_LIGHT.ttf
(Ubuntu-Light.ttf is in the epaint_default_fonts crate's fonts/ directory).
"""

import sys

from fontTools import subset
from fontTools.ttLib import TTFont

SRC = "/usr/share/fonts/truetype/dejavu/DejaVuSans-ExtraLight.ttf"
OUT = "assets/fonts/subspace-lab-chi.ttf"
FAMILY = "Subspace Lab Chi"


def main(ubuntu_path: str) -> None:
    ub = TTFont(ubuntu_path)
    opts = subset.Options()
    opts.name_IDs = ["*"]  # keep the copyright and licence records
    opts.name_languages = ["*"]
    opts.notdef_outline = True
    opts.layout_features = []
    opts.hinting = False
    f = TTFont(SRC)
    s = subset.Subsetter(opts)
    s.populate(unicodes=[0x3C7])
    s.subset(f)
    r = f["head"].unitsPerEm / ub["head"].unitsPerEm
    for table, attr in [
        ("hhea", "ascent"),
        ("hhea", "descent"),
        ("hhea", "lineGap"),
        ("OS/2", "sTypoAscender"),
        ("OS/2", "sTypoDescender"),
        ("OS/2", "sTypoLineGap"),
        ("OS/2", "usWinAscent"),
        ("OS/2", "usWinDescent"),
    ]:
        setattr(f[table], attr, round(getattr(ub[table], attr) * r))
    for rec in f["name"].names:
        if rec.nameID in (1, 4, 16, 21):
            rec.string = FAMILY
        elif rec.nameID == 6:
            rec.string = "SubspaceLabChi-ExtraLight"
        elif rec.nameID == 3:
            rec.string = FAMILY + " (a one-glyph subset of DejaVu Sans ExtraLight 2.37)"
        elif rec.nameID == 5:
            rec.string = "Version 2.37 subset"
    f.save(OUT)


if __name__ == "__main__":
    main(sys.argv[1])
