"""Rebuild fonts/ from Debian's font packages: copy the pinned faces, their licences, and
write manifest.toml (file, family, style, category, package and version, licence, sha256).

Run as root on Debian bookworm (or a container of it):

    apt-get install -y --no-install-recommends $(python fonts/collect_fonts.py --packages)
    python fonts/collect_fonts.py

Not part of the package: the shift only reads manifest.toml and the font files.

Choices (keep fonts/ under 15 MB): static faces only; Regular/Bold/Italic where a family has
them and the budget allows; outline/inverted variants left out (Femke Klaver is an outline
font, OCR-B E/F/X are inverted or outlined); Klee One (21 MB each: it carries Japanese)
is subset to the digits with fontTools, which OFL-1.1 allows for a font without a Reserved
Font Name, and recorded as such.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = Path("/usr/share/fonts")
DOC = Path("/usr/share/doc")

# Package -> (folder under /usr/share/fonts, licence as SPDX or Debian names it).
PACKAGES = {
    "fonts-dejavu-core": ("truetype/dejavu", "Bitstream-Vera"),
    "fonts-liberation2": ("truetype/liberation2", "OFL-1.1"),
    "fonts-freefont-ttf": ("truetype/freefont", "GPL-3.0-or-later WITH Font-exception-2.0"),
    "fonts-roboto-unhinted": ("truetype/roboto/unhinted/RobotoTTF", "Apache-2.0"),
    "fonts-lato": ("truetype/lato", "OFL-1.1"),
    "fonts-open-sans": ("truetype/open-sans", "Apache-2.0"),
    "fonts-cantarell": ("opentype/cantarell", "OFL-1.1"),
    "fonts-crosextra-carlito": ("truetype/crosextra", "OFL-1.1"),
    "fonts-ebgaramond": ("opentype/ebgaramond", "OFL-1.1"),
    "fonts-crosextra-caladea": ("truetype/crosextra", "OFL-1.1"),
    "fonts-inconsolata": ("truetype/inconsolata", "OFL-1.0"),
    "fonts-hack": ("truetype/hack", "MIT AND Bitstream-Vera"),
    "fonts-jetbrains-mono": ("truetype/jetbrains-mono", "Apache-2.0"),
    "fonts-courier-prime": ("opentype/courier-prime", "OFL-1.1"),
    "fonts-ocr-a": ("truetype/ocr-a", "public-domain"),
    "fonts-ocr-b": ("opentype/ocr-b", "public-domain"),
    "fonts-comic-neue": ("opentype/comic-neue", "OFL-1.1"),
    "fonts-humor-sans": ("truetype/humor-sans", "OFL-1.1"),
    "fonts-dkg-handwriting": ("truetype/fifthhorseman", "OFL-1.1"),
    "fonts-breip": ("truetype/breip", "OFL-1.0"),
    "fonts-bwht": ("opentype/bwht", "OFL-1.1"),
    "fonts-klee": ("truetype/klee", "OFL-1.1"),
    "fonts-kristi": ("truetype/kristi", "OFL-1.1"),
    "fonts-dancingscript": ("opentype/dancingscript", "OFL-1.1"),
}

# category -> [(package, file in its folder, family, style)]; weight and italic are read from
# the style. Order matters: glyph-bank indices follow the manifest.
FACES = {
    "sans": [
        ("fonts-dejavu-core", "DejaVuSans.ttf", "DejaVu Sans", "Book"),
        ("fonts-dejavu-core", "DejaVuSans-Bold.ttf", "DejaVu Sans", "Bold"),
        ("fonts-liberation2", "LiberationSans-Regular.ttf", "Liberation Sans", "Regular"),
        ("fonts-liberation2", "LiberationSans-Bold.ttf", "Liberation Sans", "Bold"),
        ("fonts-liberation2", "LiberationSans-Italic.ttf", "Liberation Sans", "Italic"),
        ("fonts-freefont-ttf", "FreeSans.ttf", "FreeSans", "Regular"),
        ("fonts-freefont-ttf", "FreeSansBoldOblique.ttf", "FreeSans", "Bold Oblique"),
        ("fonts-roboto-unhinted", "Roboto-Regular.ttf", "Roboto", "Regular"),
        ("fonts-roboto-unhinted", "Roboto-Bold.ttf", "Roboto", "Bold"),
        ("fonts-roboto-unhinted", "Roboto-Italic.ttf", "Roboto", "Italic"),
        ("fonts-roboto-unhinted", "Roboto-Light.ttf", "Roboto", "Light"),
        ("fonts-lato", "Lato-Regular.ttf", "Lato", "Regular"),
        ("fonts-open-sans", "OpenSans-Regular.ttf", "Open Sans", "Regular"),
        ("fonts-open-sans", "OpenSans-Bold.ttf", "Open Sans", "Bold"),
        ("fonts-open-sans", "OpenSans-Italic.ttf", "Open Sans", "Italic"),
        ("fonts-cantarell", "Cantarell-Regular.otf", "Cantarell", "Regular"),
        ("fonts-cantarell", "Cantarell-Bold.otf", "Cantarell", "Bold"),
        ("fonts-crosextra-carlito", "Carlito-Regular.ttf", "Carlito", "Regular"),
    ],
    "serif": [
        ("fonts-dejavu-core", "DejaVuSerif.ttf", "DejaVu Serif", "Book"),
        ("fonts-dejavu-core", "DejaVuSerif-Bold.ttf", "DejaVu Serif", "Bold"),
        ("fonts-liberation2", "LiberationSerif-Regular.ttf", "Liberation Serif", "Regular"),
        ("fonts-liberation2", "LiberationSerif-Bold.ttf", "Liberation Serif", "Bold"),
        ("fonts-liberation2", "LiberationSerif-Italic.ttf", "Liberation Serif", "Italic"),
        ("fonts-freefont-ttf", "FreeSerifBoldItalic.ttf", "FreeSerif", "Bold Italic"),
        ("fonts-ebgaramond", "EBGaramond12-Regular.otf", "EB Garamond 12", "Regular"),
        ("fonts-ebgaramond", "EBGaramond12-Italic.otf", "EB Garamond 12", "Italic"),
        ("fonts-ebgaramond", "EBGaramond12-Bold.otf", "EB Garamond 12", "Bold"),
        ("fonts-crosextra-caladea", "Caladea-Regular.ttf", "Caladea", "Regular"),
        ("fonts-crosextra-caladea", "Caladea-Bold.ttf", "Caladea", "Bold"),
        ("fonts-crosextra-caladea", "Caladea-Italic.ttf", "Caladea", "Italic"),
        ("fonts-crosextra-caladea", "Caladea-BoldItalic.ttf", "Caladea", "Bold Italic"),
    ],
    "mono": [
        ("fonts-dejavu-core", "DejaVuSansMono.ttf", "DejaVu Sans Mono", "Book"),
        ("fonts-dejavu-core", "DejaVuSansMono-Bold.ttf", "DejaVu Sans Mono", "Bold"),
        ("fonts-liberation2", "LiberationMono-Regular.ttf", "Liberation Mono", "Regular"),
        ("fonts-liberation2", "LiberationMono-Bold.ttf", "Liberation Mono", "Bold"),
        ("fonts-inconsolata", "Inconsolata.otf", "Inconsolata", "Medium"),
        ("fonts-hack", "Hack-Regular.ttf", "Hack", "Regular"),
        ("fonts-hack", "Hack-Italic.ttf", "Hack", "Italic"),
        ("fonts-jetbrains-mono", "JetBrainsMono-Regular.ttf", "JetBrains Mono", "Regular"),
        ("fonts-jetbrains-mono", "JetBrainsMono-Bold.ttf", "JetBrains Mono", "Bold"),
        ("fonts-jetbrains-mono", "JetBrainsMono-Italic.ttf", "JetBrains Mono", "Italic"),
        ("fonts-courier-prime", "Courier Prime.otf", "Courier Prime", "Regular"),
        ("fonts-courier-prime", "Courier Prime Bold.otf", "Courier Prime", "Bold"),
        ("fonts-courier-prime", "Courier Prime Italic.otf", "Courier Prime", "Italic"),
        ("fonts-courier-prime", "Courier Prime Bold Italic.otf", "Courier Prime", "Bold Italic"),
    ],
    "ocr": [
        ("fonts-ocr-a", "OCRA.ttf", "OCR-A", "Medium"),
        ("fonts-ocr-a", "OCRABold.ttf", "OCR-A", "Bold"),
        ("fonts-ocr-a", "OCRAItalic.ttf", "OCR-A", "Italic"),
        ("fonts-ocr-b", "OCRB.otf", "OCR-B", "Regular"),
        ("fonts-ocr-b", "OCRBS.otf", "OCR-B", "Sharp"),
        ("fonts-ocr-b", "OCRBL.otf", "OCR-B", "Oblique"),
    ],
    "handwriting": [
        ("fonts-comic-neue", "ComicNeue-Regular.otf", "Comic Neue", "Regular"),
        ("fonts-comic-neue", "ComicNeue-Bold.otf", "Comic Neue", "Bold"),
        ("fonts-comic-neue", "ComicNeue-Italic.otf", "Comic Neue", "Italic"),
        ("fonts-comic-neue", "ComicNeue-Light.otf", "Comic Neue", "Light"),
        ("fonts-humor-sans", "Humor-Sans.ttf", "Humor Sans", "Regular"),
        ("fonts-dkg-handwriting", "dkg.ttf", "DKG Handwriting", "Regular"),
        ("fonts-dkg-handwriting", "dkgBd.ttf", "DKG Handwriting", "Bold"),
        ("fonts-dkg-handwriting", "dkgIt.ttf", "DKG Handwriting", "Italic"),
        ("fonts-breip", "Breip.ttf", "Breip", "Regular"),
        ("fonts-bwht", "BecauseWeBuild-Regular.otf", "Because We Build", "Regular"),
        ("fonts-bwht", "BecauseWeConnect-Regular.otf", "Because We Connect", "Regular"),
        ("fonts-bwht", "BecauseWeCreate-Regular.otf", "Because We Create", "Regular"),
        ("fonts-bwht", "BecauseWeLearn-Regular.otf", "Because We Learn", "Regular"),
        ("fonts-bwht", "BecauseWeMentor-Regular.otf", "Because We Mentor", "Regular"),
        ("fonts-bwht", "BecauseWeOrganize-Regular.otf", "Because We Organize", "Regular"),
        ("fonts-klee", "KleeOne-Regular.ttf", "Klee One", "Regular"),
        ("fonts-klee", "KleeOne-SemiBold.ttf", "Klee One", "SemiBold"),
        ("fonts-kristi", "Kristi.ttf", "Kristi", "Regular"),
        ("fonts-dancingscript", "DancingScript-Regular.otf", "Dancing Script", "Regular"),
        ("fonts-dancingscript", "DancingScript-Bold.otf", "Dancing Script", "Bold"),
    ],
}

# Files renamed on the way in (spaces in names; subset files must not pose as the original).
RENAME = {
    "Courier Prime.otf": "CourierPrime-Regular.otf",
    "Courier Prime Bold.otf": "CourierPrime-Bold.otf",
    "Courier Prime Italic.otf": "CourierPrime-Italic.otf",
    "Courier Prime Bold Italic.otf": "CourierPrime-BoldItalic.otf",
    "KleeOne-Regular.ttf": "KleeOne-Regular-digits.ttf",
    "KleeOne-SemiBold.ttf": "KleeOne-SemiBold-digits.ttf",
}

WEIGHTS = ("SemiBold", "Bold", "Light")  # first match wins: "SemiBold" contains "Bold"
SUBSET = {"fonts-klee"}  # packages whose (huge, CJK) files are subset to the digits
COMMON = {"Apache-2.0": "Apache-2.0", "GPL-3": "GPL-3"}  # texts the copyright files refer to


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def version(package: str) -> str:
    return subprocess.run(["dpkg-query", "-W", "-f=${Version}", package], check=True,
                          capture_output=True, text=True).stdout


def subset_digits(src: Path, dst: Path) -> None:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    opts = subset.Options()
    opts.name_IDs = ["*"]  # keep the copyright and licence strings (OFL condition 2)
    opts.name_languages = ["*"]
    opts.layout_features = []
    opts.hinting = False
    font = TTFont(str(src), recalcTimestamp=False)  # same bytes every run
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=[ord(c) for c in "0123456789 "])
    sub.subset(font)
    font.save(str(dst))


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main() -> None:
    if "--packages" in sys.argv:
        print(" ".join(sorted(PACKAGES)))
        return
    lic_dir = HERE / "licenses"
    lic_dir.mkdir(exist_ok=True)
    for old in HERE.glob("*.[ot]tf"):
        old.unlink()
    lines = [
        "# Pinned fonts for the `fonts` and `euro_fonts` shifts. Generated by collect_fonts.py",
        "# from Debian bookworm packages; do not edit by hand. Licence texts: licenses/.",
        "",
    ]
    n = 0
    for category, faces in FACES.items():
        for pkg, file, family, style in faces:
            folder, lic = PACKAGES[pkg]
            src = SRC / folder / file
            dst = HERE / RENAME.get(file, file)
            if pkg in SUBSET:
                subset_digits(src, dst)
            else:
                shutil.copyfile(src, dst)
            italic = "Italic" in style or "Oblique" in style
            weight = next((w.lower() for w in WEIGHTS if w in style), "regular")
            lines += [
                "[[font]]",
                f"file = {toml_str(dst.name)}",
                f"family = {toml_str(family)}",
                f"style = {toml_str(style)}",
                f"weight = {toml_str(weight)}",
                f"italic = {'true' if italic else 'false'}",
                f"category = {toml_str(category)}",
                f"package = {toml_str(pkg)}",
                f"package_version = {toml_str(version(pkg))}",
                f"source = {toml_str(str(src))}",
                f"license = {toml_str(lic)}",
                f"license_file = {toml_str('licenses/' + pkg + '.copyright')}",
            ]
            if pkg in SUBSET:
                how = "subset to the digits 0-9 with fontTools; source sha256 " + sha256(src)
                lines.append(f"derived = {toml_str(how)}")
            lines += [f"sha256 = {toml_str(sha256(dst))}", ""]
            shutil.copyfile(DOC / pkg / "copyright", lic_dir / f"{pkg}.copyright")
            n += 1
    for name, common in COMMON.items():
        shutil.copyfile(Path("/usr/share/common-licenses") / common, lic_dir / f"{name}.txt")
    (HERE / "manifest.toml").write_text("\n".join(lines), encoding="utf-8")
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"{n} faces, fonts/ is {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
