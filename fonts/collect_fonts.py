"""Rebuild fonts/ from Debian bookworm's font packages: fetch them with ``apt-get download``,
unpack with ``dpkg -x``, pick the faces, copy (or subset) them with their licences, and write
manifest.toml (file, family, style, weight, italic, width, category, tags, split, package and
version, licence, sha256).

    python fonts/collect_fonts.py            # downloads into a temporary folder (needs apt)
    python fonts/collect_fonts.py --root DIR # DIR/<package>/ already unpacked with dpkg -x
    python fonts/collect_fonts.py --packages # the package list

Not part of the package: the shifts only read manifest.toml and the font files.

Choices:

- **Size budget: fonts/ stays under 25 MB.** A face is copied whole when its licence limits
  modified copies (a Reserved Font Name under the OFL, the GPL family, Bitstream Vera, the
  ParaType licence), or subset to the digits 0-9 with fontTools when its licence allows modified
  copies without renaming (OFL without a Reserved Font Name, Apache-2.0, MIT, BSD, public domain,
  CC0). Whole files over WHOLE_MAX bytes are left out. Subset files keep every name record (the
  copyright and licence strings) and get a ``-digits`` suffix so they never pose as the original.
- At most MAX_PER_FAMILY faces per family (regular first, then bold, italic, the rest), so the
  pool has many designs rather than many weights of a few; variable fonts, outline-only and
  bitmap-only faces, and faces whose digits render identically to an earlier face are skipped.
- **Training and evaluation faces** (``split``): whole families go to one side (a bold weight in
  training would leak its regular sibling's design into evaluation). Within each category the
  families are ordered by a hash of their name and every EVAL_EVERY-th one is an evaluation
  family, so both sides cover every category; the split is pinned in the manifest.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DIGITS = "0123456789"
MAX_PER_FAMILY = 4
WHOLE_MAX = 250_000  # bytes; larger faces that may not be subset are left out
EVAL_EVERY = 2  # 1 family in 2 is held out for evaluation
BUDGET = 25_000_000

# package -> (category, licence (SPDX where it has one), tags of every face in it)
PACKAGES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # sans
    "fonts-dejavu-core": ("sans", "Bitstream-Vera", ()),
    "fonts-dejavu-extra": ("sans", "Bitstream-Vera", ()),
    "fonts-liberation2": ("sans", "OFL-1.1", ()),
    "fonts-freefont-ttf": ("sans", "GPL-3.0-or-later WITH Font-exception-2.0", ()),
    "fonts-roboto-unhinted": ("sans", "Apache-2.0", ()),
    "fonts-lato": ("sans", "OFL-1.1", ()),
    "fonts-open-sans": ("sans", "Apache-2.0", ()),
    "fonts-cantarell": ("sans", "OFL-1.1", ()),
    "fonts-crosextra-carlito": ("sans", "OFL-1.1", ()),
    "fonts-cabin": ("sans", "OFL-1.1", ()),
    "fonts-clear-sans": ("sans", "Apache-2.0", ()),
    "fonts-croscore": ("sans", "OFL-1.1", ()),
    "fonts-go": ("sans", "BSD-3-Clause", ()),
    "fonts-inter": ("sans", "OFL-1.1", ()),
    "fonts-junction": ("sans", "OFL-1.1", ()),
    "fonts-karla": ("sans", "OFL-1.1", ()),
    "fonts-karmilla": ("sans", "OFL-1.1", ()),
    "fonts-manrope": ("sans", "OFL-1.1", ()),
    "fonts-oxygen": ("sans", "OFL-1.1", ()),
    "fonts-play": ("sans", "OFL-1.1", ()),
    "fonts-sora": ("sans", "OFL-1.1", ()),
    "fonts-tuffy": ("sans", "public-domain", ()),
    "fonts-league-spartan": ("sans", "OFL-1.1", ("geometric",)),
    "fonts-beteckna": ("sans", "GPL-3.0", ("geometric",)),
    "fonts-adf-gillius": ("sans", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-switzera": ("sans", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-verana": ("sans", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-averia-sans-gwf": ("sans", "OFL-1.1", ()),
    "fonts-paratype": ("sans", "ParaType-Free-Font-License", ()),
    "fonts-jura": ("sans", "OFL-1.1", ()),
    "fonts-prociono": ("sans", "public-domain", ()),
    # serif
    "fonts-ebgaramond": ("serif", "OFL-1.1", ()),
    "fonts-crosextra-caladea": ("serif", "OFL-1.1", ()),
    "fonts-cardo": ("serif", "OFL-1.1", ()),
    "fonts-fanwood": ("serif", "MIT", ()),
    "fonts-goudybookletter": ("serif", "public-domain", ()),
    "fonts-lindenhill": ("serif", "MIT", ()),
    "fonts-quattrocento": ("serif", "OFL-1.1", ()),
    "fonts-vollkorn": ("serif", "OFL-1.1", ()),
    "fonts-linuxlibertine": ("serif", "GPL-2.0-or-later WITH Font-exception-2.0 OR OFL-1.1", ()),
    "fonts-adf-baskervald": ("serif", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-libris": ("sans", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-accanthis": ("serif", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-romande": ("serif", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-berenis": ("serif", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-oldania": ("serif", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-irianis": ("sans", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-averia-serif-gwf": ("serif", "OFL-1.1", ()),
    "fonts-arapey": ("serif", "OFL-1.1", ()),
    "fonts-elstob": ("serif", "OFL-1.1", ()),
    "fonts-junicode": ("serif", "OFL-1.1", ()),
    "fonts-solide-mirage": ("serif", "OFL-1.1", ("didone",)),
    # slab
    "fonts-roboto-slab": ("slab", "Apache-2.0", ()),
    "fonts-adf-tribun": ("slab", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-compagnon": ("slab", "OFL-1.1", ("typewriter",)),
    # mono
    "fonts-inconsolata": ("mono", "OFL-1.0", ()),
    "fonts-hack": ("mono", "MIT AND Bitstream-Vera", ()),
    "fonts-jetbrains-mono": ("mono", "Apache-2.0", ()),
    "fonts-courier-prime": ("mono", "OFL-1.1", ("typewriter",)),
    "fonts-gnutypewriter": ("mono", "OFL-1.1", ("typewriter",)),
    "fonts-anonymous-pro": ("mono", "OFL-1.1", ()),
    "fonts-agave": ("mono", "MIT", ()),
    "fonts-3270": ("mono", "BSD-3-Clause AND OFL-1.1", ("terminal",)),
    "fonts-fantasque-sans": ("mono", "OFL-1.1", ()),
    "fonts-firacode": ("mono", "OFL-1.1", ()),
    "fonts-hermit": ("mono", "OFL-1.1", ()),
    "fonts-league-mono": ("mono", "OFL-1.1", ()),
    "fonts-monofur": ("mono", "OFL-1.1", ("rounded",)),
    "fonts-monoid": ("mono", "MIT OR OFL-1.1", ()),
    "fonts-mononoki": ("mono", "OFL-1.1", ()),
    # ocr and signage
    "fonts-ocr-a": ("ocr", "public-domain", ()),
    "fonts-ocr-b": ("ocr", "public-domain", ()),
    "fonts-b612": ("ocr", "OFL-1.1", ("cockpit",)),
    "fonts-opendin": ("ocr", "OFL-1.1", ("signage",)),
    "fonts-national-park": ("ocr", "OFL-1.1", ("signage",)),
    "fonts-roadgeek": ("ocr", "MIT", ("signage",)),
    "fonts-routed-gothic": ("ocr", "OFL-1.1", ("engraved",)),
    "fonts-osifont": ("ocr", "GPL-3.0-only WITH Font-exception-2.0", ("cad",)),
    "fonts-tiresias": ("ocr", "GPL-3.0-or-later WITH Font-exception-2.0", ("signage",)),
    # display: condensed, rounded, stencil, decorative
    "fonts-bebas-neue": ("display", "OFL-1.1", ("condensed",)),
    "fonts-yanone-kaffeesatz": ("display", "OFL-1.1", ("condensed",)),
    "fonts-comfortaa": ("display", "OFL-1.1", ("rounded",)),
    "fonts-dosis": ("display", "OFL-1.1", ("rounded",)),
    "fonts-quicksand": ("display", "OFL-1.1", ("rounded",)),
    "fonts-eurofurence": ("display", "OFL-1.1", ("rounded",)),
    "fonts-allerta": ("display", "OFL-1.1", ()),
    "fonts-cherrybomb": ("display", "OFL-1.1", ("rounded",)),
    "fonts-lobster": ("display", "OFL-1.1", ("script",)),
    "fonts-leckerli-one": ("display", "OFL-1.1", ()),
    "fonts-ferrite-core": ("display", "OFL-1.1", ("geometric",)),
    "fonts-millimetre": ("display", "OFL-1.1", ("geometric",)),
    "fonts-radisnoir": ("display", "OFL-1.1", ("geometric",)),
    "fonts-okolaks": ("display", "OFL-1.1", ()),
    "fonts-engadget": ("display", "LGPL-2.0-or-later", ()),
    "fonts-staypuft": ("display", "LGPL-2.0-or-later", ("rounded",)),
    "fonts-summersby": ("display", "GPL-2.0-or-later", ()),
    "fonts-rocknroll": ("display", "OFL-1.1", ()),
    "fonts-averia-gwf": ("display", "OFL-1.1", ()),
    "fonts-cabinsketch": ("display", "OFL-1.1", ()),
    "fonts-stick": ("display", "OFL-1.1", ()),
    "fonts-apropal": ("display", "OFL-1.1", ("signage",)),
    "fonts-bajaderka": ("display", "OFL-1.1", ("signage",)),
    "fonts-le-murmure": ("display", "OFL-1.1", ("condensed",)),
    "fonts-fantasma": ("display", "CC0-1.0", ()),
    "fonts-adf-mekanus": ("display", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-ikarius": ("display", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-adf-universalis": ("display", "GPL-2.0-or-later WITH Font-exception-2.0", ()),
    "fonts-havana": ("display", "OFL-1.1", ("script",)),
    # seven- and fourteen-segment displays
    "fonts-dseg": ("segment", "OFL-1.1", ("segment",)),
    # handwriting
    "fonts-comic-neue": ("handwriting", "OFL-1.1", ()),
    "fonts-humor-sans": ("handwriting", "OFL-1.1", ()),
    "fonts-dkg-handwriting": ("handwriting", "OFL-1.1", ()),
    "fonts-breip": ("handwriting", "OFL-1.0", ()),
    "fonts-bwht": ("handwriting", "OFL-1.1", ()),
    "fonts-klee": ("handwriting", "OFL-1.1", ()),
    "fonts-kristi": ("handwriting", "OFL-1.1", ()),
    "fonts-dancingscript": ("handwriting", "OFL-1.1", ()),
    "fonts-sjfonts": ("handwriting", "GPL-2.0-or-later", ()),
    "fonts-rufscript": ("handwriting", "OFL-1.1", ()),
    "fonts-tomsontalks": ("handwriting", "GPL-2.0-or-later", ("comic",)),
    "fonts-kaushanscript": ("handwriting", "OFL-1.1", ("brush",)),
    "fonts-isabella": ("handwriting", "LGPL-2.0-or-later", ()),
}

# Licences that allow a modified (subset) copy under the original name.
MODIFIABLE = ("OFL-1.0", "OFL-1.1", "Apache-2.0", "MIT", "BSD-3-Clause", "public-domain",
              "CC0-1.0", "MIT OR OFL-1.1")
# A Reserved Font Name as the OFL's notices state it (not the licence's own definition).
RFN = re.compile(r"with\s+(the\s+)?Reserved\s+Font\s+Names?|Reserved\s+Font\s+Names?\s*:",
                 re.IGNORECASE)
SKIP_FILE = re.compile(r"(Outline|Inline|Shadow|Hairline|Variable|VF\b|\[|Symbol|Initials|"
                       r"Smallcaps|SmallCaps|Caps|Display-?Ornaments|Mono-?Outline|TamilI|Weather|"
                       r"LinBiolinum_K|FerriteCoreDX|7SEGG)",
                       re.IGNORECASE)
STYLE_ORDER = ("regular", "bold", "italic", "bolditalic", "light", "black", "medium",
               "semibold", "thin", "other")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def deb_version(deb: Path) -> str:
    return subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], check=True,
                          capture_output=True, text=True).stdout.strip()


def download(dest: Path) -> dict[str, str]:
    """apt-get download + dpkg -x of every package into dest/<package>; {package: version}."""
    debs = dest / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    subprocess.run(["apt-get", "download", "-q", *PACKAGES], cwd=debs, check=True)
    versions = {}
    for deb in sorted(debs.glob("*.deb")):
        pkg = deb.name.split("_")[0]
        subprocess.run(["dpkg", "-x", str(deb), str(dest / pkg)], check=True)
        versions[pkg] = deb_version(deb)
    return versions


def _name(font, *ids: int) -> str:
    for i in ids:
        rec = font["name"].getDebugName(i)
        if rec:
            return rec.strip()
    return ""


def describe(path: Path) -> dict | None:
    """Family, style, weight, italic, width of one face, or None if it is not usable."""
    from fontTools.ttLib import TTFont

    try:
        font = TTFont(str(path), lazy=True, fontNumber=0)
    except Exception:  # noqa: BLE001 - an unreadable face is simply not picked
        return None
    try:
        if "fvar" in font or ("glyf" not in font and "CFF " not in font and "CFF2" not in font):
            return None  # variable or bitmap-only
        cmap = font.getBestCmap() or {}
        if any(ord(d) not in cmap for d in DIGITS):
            return None
        glyphs = font.getGlyphSet()
        from fontTools.pens.boundsPen import BoundsPen

        for d in DIGITS:
            pen = BoundsPen(glyphs)
            glyphs[cmap[ord(d)]].draw(pen)
            if pen.bounds is None:
                return None  # empty digit
        os2 = font["OS/2"] if "OS/2" in font else None
        weight_class = os2.usWeightClass if os2 else 400
        width_class = os2.usWidthClass if os2 else 5
        style = _name(font, 17, 2) or "Regular"
        family = _name(font, 16, 1) or path.stem
        italic = bool(os2 and os2.fsSelection & 1) or bool(re.search("italic|oblique|slant",
                                                                    style, re.IGNORECASE))
        notice = _name(font, 0) + " " + _name(font, 13)
        return {"family": family, "style": style, "weight_class": weight_class,
                "width_class": width_class, "italic": italic, "rfn": bool(RFN.search(notice))}
    finally:
        font.close()


def weight_name(wc: int) -> str:
    for limit, name in ((250, "thin"), (350, "light"), (450, "regular"), (550, "medium"),
                        (650, "semibold"), (750, "bold")):
        if wc < limit:
            return name
    return "black"


def style_rank(info: dict) -> int:
    w = weight_name(info["weight_class"])
    key = ("bold" if w in ("bold",) else w) + ("italic" if info["italic"] else "")
    if key == "regularitalic":
        key = "italic"
    return STYLE_ORDER.index(key) if key in STYLE_ORDER else len(STYLE_ORDER)


def subset_digits(src: Path, dst: Path) -> None:
    from fontTools import subset
    from fontTools.ttLib import TTFont

    opts = subset.Options()
    opts.name_IDs = ["*"]  # keep the copyright and licence strings (OFL condition 2)
    opts.name_languages = ["*"]
    opts.layout_features = []
    opts.hinting = False
    opts.notdef_outline = True
    font = TTFont(str(src), recalcTimestamp=False)  # same bytes every run
    sub = subset.Subsetter(opts)
    sub.populate(unicodes=[ord(c) for c in DIGITS + " "])
    sub.subset(font)
    font.save(str(dst))


def digits_raster_key(path: Path) -> str:
    """A hash of the rendered digits: two files that draw the same digits count once."""
    sys.path.insert(0, str(HERE.parent))
    from robustmnist.shifts.glyphs import render_face

    return hashlib.sha256(render_face(path).tobytes()).hexdigest()


def safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "", s)


def collect(root: Path, versions: dict[str, str]) -> None:
    lic_dir = HERE / "licenses"
    if lic_dir.exists():
        shutil.rmtree(lic_dir)
    lic_dir.mkdir()
    for old in HERE.glob("*.[ot]tf"):
        old.unlink()
    picked: list[dict] = []
    seen_raster: set[str] = set()
    for pkg, (category, lic, tags) in PACKAGES.items():
        base = root / pkg / "usr" / "share" / "fonts"
        files = sorted(p for p in base.rglob("*") if p.suffix.lower() in (".ttf", ".otf")
                       and not SKIP_FILE.search(p.name) and "/woff" not in str(p))
        by_family: dict[str, list[tuple[int, Path, dict]]] = {}
        for f in files:
            info = describe(f)
            if info is None:
                continue
            by_family.setdefault(info["family"], []).append((style_rank(info), f, info))
        copyright_text = (root / pkg / "usr/share/doc" / pkg / "copyright").read_text(
            encoding="utf-8", errors="replace")
        pkg_rfn = bool(RFN.search(copyright_text))
        for family, faces in by_family.items():
            faces.sort(key=lambda t: (t[0], t[1].suffix != ".ttf", t[1].name))
            taken_styles: set[str] = set()
            n = 0
            for _, f, info in faces:
                if n >= MAX_PER_FAMILY or info["style"] in taken_styles:
                    continue
                modifiable = lic in MODIFIABLE and not (pkg_rfn or info["rfn"])
                if not modifiable and f.stat().st_size > WHOLE_MAX:
                    continue
                key = digits_raster_key(f)
                if key in seen_raster:
                    continue
                seen_raster.add(key)
                taken_styles.add(info["style"])
                n += 1
                stem = safe_name(f.stem)
                dst = HERE / (f"{stem}-digits{f.suffix.lower()}" if modifiable else
                              f"{stem}{f.suffix.lower()}")
                if dst.exists():
                    dst = dst.with_name(f"{safe_name(pkg)}-{dst.name}")
                if modifiable:
                    subset_digits(f, dst)
                else:
                    shutil.copyfile(f, dst)
                face_tags = list(tags)
                if info["width_class"] < 5 and "condensed" not in face_tags:
                    face_tags.append("condensed")
                if "stencil" in f.name.lower():
                    face_tags.append("stencil")
                picked.append({
                    "file": dst.name, "family": family, "style": info["style"],
                    "weight": weight_name(info["weight_class"]), "italic": info["italic"],
                    "category": category, "tags": face_tags, "package": pkg,
                    "package_version": versions.get(pkg, ""),
                    "source": str(f.relative_to(root / pkg)).replace("usr/share", "/usr/share"),
                    "license": lic, "license_file": f"licenses/{pkg}.copyright",
                    "derived": ("subset to the digits 0-9 with fontTools; source sha256 "
                                + sha256(f)) if modifiable else "",
                    "sha256": sha256(dst),
                })
        if any(p["package"] == pkg for p in picked):
            shutil.copyfile(root / pkg / "usr/share/doc" / pkg / "copyright",
                            lic_dir / f"{pkg}.copyright")
    assign_split(picked)
    write_manifest(picked)
    for name, common in {"Apache-2.0": "Apache-2.0", "GPL-2": "GPL-2", "GPL-3": "GPL-3",
                         "LGPL-2": "LGPL-2"}.items():
        src = Path("/usr/share/common-licenses") / common
        if src.is_file():
            shutil.copyfile(src, lic_dir / f"{name}.txt")
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"{len(picked)} faces in {len({p['family'] for p in picked})} families, "
          f"fonts/ is {total / 1e6:.2f} MB (budget {BUDGET / 1e6:.0f} MB)")
    if total > BUDGET:
        raise SystemExit("over the size budget")


def assign_split(faces: list[dict]) -> None:
    by_cat: dict[str, list[str]] = {}
    for f in faces:
        fams = by_cat.setdefault(f["category"], [])
        if f["family"] not in fams:
            fams.append(f["family"])
    split = {}
    for fams in by_cat.values():
        order = sorted(fams, key=lambda s: hashlib.sha256(s.encode()).hexdigest())
        for i, fam in enumerate(order):
            split[fam] = "eval" if i % EVAL_EVERY == 0 else "train"
    for f in faces:
        f["split"] = split[f["family"]]


def write_manifest(faces: list[dict]) -> None:
    lines = [
        "# Pinned fonts for the `fonts*` and `euro_fonts` shifts. Generated by collect_fonts.py",
        "# from Debian bookworm packages; do not edit by hand. Licence texts: licenses/.",
        "# split: eval faces make the evaluation sets, train faces feed --augment (never both).",
        "",
    ]
    for f in faces:
        lines.append("[[font]]")
        for key in ("file", "family", "style", "weight", "italic", "category", "tags", "split",
                    "package", "package_version", "source", "license", "license_file",
                    "derived", "sha256"):
            v = f[key]
            if key == "derived" and not v:
                continue
            if isinstance(v, bool):
                lines.append(f"{key} = {'true' if v else 'false'}")
            elif isinstance(v, list):
                lines.append(f"{key} = [{', '.join(toml_str(t) for t in v)}]")
            else:
                lines.append(f"{key} = {toml_str(str(v))}")
        lines.append("")
    (HERE / "manifest.toml").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    if "--packages" in sys.argv:
        print(" ".join(sorted(PACKAGES)))
        return
    if "--root" in sys.argv:
        root = Path(sys.argv[sys.argv.index("--root") + 1])
        versions = {}
        debs = root / "debs"
        for deb in sorted(debs.glob("*.deb")) if debs.is_dir() else []:
            versions[deb.name.split("_")[0]] = deb_version(deb)
        collect(root, versions)
        return
    with tempfile.TemporaryDirectory() as tmp:
        collect(Path(tmp), download(Path(tmp)))


if __name__ == "__main__":
    main()
