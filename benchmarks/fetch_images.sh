#!/usr/bin/env bash
# Fetch real test images for the bigquant benchmarks from Debian wallpaper packages.
#
# Usage (from the repository root, as root or with apt-get permissions):
#
#     bash benchmarks/fetch_images.sh [--update] [--no-plasma]
#
# What it does:
#   1. `apt-get download` the wallpaper packages below into benchmarks/data/debs/
#      (runs `apt-get update` first if apt does not know them yet, or with --update);
#      already downloaded .deb files are reused.
#   2. `dpkg -x` each into benchmarks/data/pkgs/<package>/ (nothing is installed).
#   3. Lists every raster image found (size, Mpx, format, package) and copies
#        - the large photographs, JPEG/PNG of 8-18 Mpx (7.9-18.5 Mpx, so that 3264x2448
#          "8 Mpx" camera frames count), one per picture (a smaller rendition of the same
#          picture, e.g. Elephants_3840x2160.jpg next to Elephants_5640x3172.jpg, is skipped),
#          from every package except plasma-workspace-wallpapers, to benchmarks/data/photos/
#          with a manifest benchmarks/data/photos/manifest.tsv;
#        - every 5120x2880 image to benchmarks/data/5120x2880/ (in Debian 12 these come only
#          from plasma-workspace-wallpapers: KDE's published illustrations, e.g. SafeLanding
#          by Louis Durrant, CC-BY-SA-4.0).
#
# Packages (first name apt knows wins in each group):
#   lomiri-wallpapers-16.04 | lomiri-wallpapers-20.04 | lomiri-wallpapers   (photographs)
#   mate-backgrounds                                                       (photos, artwork)
#   gnome-backgrounds          (4096x4096 WebP/SVG illustrations; no photographs in 43.x)
#   plasma-workspace-wallpapers  (94 MB; the 5120x2880 illustrations; skip with --no-plasma)
#
# Prints: progress lines, then a Markdown table of the images found and the lists of files
# copied. Environment: BQ_DATA (default benchmarks/data), PYTHON (default python3; needs Pillow).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=${BQ_DATA:-$HERE/data}
PY=${PYTHON:-python3}
if ! "$PY" -c "import PIL" 2>/dev/null; then
    echo "fetch_images.sh: $PY cannot import Pillow; activate bigquant's virtual environment or set PYTHON" >&2
    exit 2
fi
DEBS=$DATA/debs
PKGS=$DATA/pkgs

UPDATE=0
PLASMA=1
for arg in "$@"; do
    case "$arg" in
        --update) UPDATE=1 ;;
        --no-plasma) PLASMA=0 ;;
        -h|--help) sed -n '2,33p' "$0"; exit 0 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

GROUPS_=("lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 lomiri-wallpapers"
         "mate-backgrounds"
         "gnome-backgrounds")
if [ "$PLASMA" = 1 ]; then GROUPS_+=("plasma-workspace-wallpapers"); fi

mkdir -p "$DEBS" "$PKGS"

candidate() {  # print apt's candidate version of $1, or nothing
    local c
    c=$(apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2; exit}')
    if [ -n "$c" ] && [ "$c" != "(none)" ]; then echo "$c"; fi
}

if [ "$UPDATE" = 1 ] || [ -z "$(candidate mate-backgrounds)" ]; then
    echo "== apt-get update" >&2
    apt-get update -qq
fi

CHOSEN=()
for group in "${GROUPS_[@]}"; do
    pkg=""
    for name in $group; do
        if [ -n "$(candidate "$name")" ]; then pkg=$name; break; fi
    done
    if [ -z "$pkg" ]; then
        echo "== none of [$group] is known to apt; skipped" >&2
        continue
    fi
    CHOSEN+=("$pkg")
    if ! ls "$DEBS/${pkg}"_*.deb >/dev/null 2>&1; then
        echo "== apt-get download $pkg ($(candidate "$pkg"))" >&2
        # apt warns that it downloads unsandboxed as root into a folder _apt cannot write;
        # that is harmless.
        (cd "$DEBS" && apt-get download -q "$pkg" 2>&1 | grep -v "unsandboxed" >&2 || true)
    fi
    deb=$(ls "$DEBS/${pkg}"_*.deb 2>/dev/null | sort | tail -n 1)
    if [ -z "$deb" ]; then echo "== download of $pkg failed" >&2; exit 1; fi
    if [ ! -e "$PKGS/$pkg/.extracted" ]; then
        echo "== dpkg -x $(basename "$deb") $PKGS/$pkg" >&2
        rm -rf "${PKGS:?}/$pkg"
        mkdir -p "$PKGS/$pkg"
        dpkg -x "$deb" "$PKGS/$pkg"
        basename "$deb" > "$PKGS/$pkg/.extracted"
    fi
done

echo "== packages: ${CHOSEN[*]}" >&2

"$PY" - "$DATA" "${CHOSEN[@]}" <<'PYEOF'
import os, re, shutil, sys
from PIL import Image

Image.MAX_IMAGE_PIXELS = None
data, packages = sys.argv[1], sys.argv[2:]
pkgs_dir = os.path.join(data, "pkgs")
photos_dir = os.path.join(data, "photos")
big_dir = os.path.join(data, "5120x2880")
os.makedirs(photos_dir, exist_ok=True)
os.makedirs(big_dir, exist_ok=True)

PHOTO_MIN, PHOTO_MAX = 7.9e6, 18.5e6
PHOTO_FORMATS = {"JPEG", "PNG"}
LIST_MIN = 4e6  # the table lists images of at least this many pixels
NOT_PHOTO_PACKAGES = {"plasma-workspace-wallpapers"}

found = []
for pkg in packages:
    root = os.path.join(pkgs_dir, pkg)
    for dirpath, _, files in os.walk(root):
        for f in sorted(files):
            if not f.lower().endswith((".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff")):
                continue
            p = os.path.join(dirpath, f)
            if os.path.islink(p):  # KDE links its smaller "renditions" to one file
                continue
            try:
                with Image.open(p) as im:
                    w, h = im.size
                    found.append(dict(pkg=pkg, path=p, rel=os.path.relpath(p, root), w=w, h=h,
                                      fmt=im.format, mode=im.mode, bytes=os.path.getsize(p)))
            except Exception as exc:  # not an image Pillow reads
                print(f"   skip {p}: {exc}", file=sys.stderr)

found.sort(key=lambda r: (r["pkg"], -r["w"] * r["h"], r["rel"]))

def stem_of(rel):
    """Picture name without a trailing _WxH (so renditions of one picture share a stem)."""
    s = os.path.splitext(os.path.basename(rel))[0]
    return re.sub(r"[_-]?\d{3,5}x\d{3,5}$", "", s) or s

def big_name(r):
    """A readable name for a 5120x2880 file (KDE names every rendition 5120x2880.ext)."""
    parts = r["rel"].split("/")
    ext = os.path.splitext(r["rel"])[1].lower()
    if "contents" in parts:  # usr/share/wallpapers/<Name>/contents/images[_dark]/5120x2880.ext
        i = parts.index("contents")
        name = parts[i - 1] + ("-dark" if parts[i + 1].endswith("_dark") else "")
        return name + ext
    return os.path.basename(r["rel"])

photos, seen_stems, bigs = [], set(), []
for r in found:
    px = r["w"] * r["h"]
    r["role"] = ""
    if (r["pkg"] not in NOT_PHOTO_PACKAGES and r["fmt"] in PHOTO_FORMATS
            and PHOTO_MIN <= px <= PHOTO_MAX):
        st = (r["pkg"], stem_of(r["rel"]))
        if st in seen_stems:  # found sorted largest first within a package
            r["role"] = "smaller rendition, skipped"
        else:
            seen_stems.add(st)
            photos.append(r)
            r["role"] = "photos/"
    if (r["w"], r["h"]) == (5120, 2880):
        bigs.append(r)
        r["role"] = (r["role"] + " " if r["role"] else "") + "5120x2880/"

print("| package | file | W×H | Mpx | format | mode | MB | copied to |")
print("|---|---|---|---:|---|---|---:|---|")
for r in found:
    if r["w"] * r["h"] < LIST_MIN and not r["role"]:
        continue
    print(f"| {r['pkg']} | {r['rel']} | {r['w']}×{r['h']} | {r['w']*r['h']/1e6:.1f} | "
          f"{r['fmt']} | {r['mode']} | {r['bytes']/1e6:.1f} | {r['role']} |")
print(f"\n({sum(r['w'] * r['h'] < LIST_MIN for r in found)} images under {LIST_MIN/1e6:g} Mpx not listed)\n")

with open(os.path.join(photos_dir, "manifest.tsv"), "w") as man:
    man.write("file\twidth\theight\tmpx\tformat\tpackage\tsource\n")
    for r in photos:
        dst = os.path.join(photos_dir, os.path.basename(r["rel"]))
        if not os.path.exists(dst) or os.path.getsize(dst) != r["bytes"]:
            shutil.copyfile(r["path"], dst)
        man.write(f"{os.path.basename(dst)}\t{r['w']}\t{r['h']}\t{r['w']*r['h']/1e6:.2f}\t"
                  f"{r['fmt']}\t{r['pkg']}\t{r['rel']}\n")
for r in bigs:
    dst = os.path.join(big_dir, big_name(r))
    if not os.path.exists(dst) or os.path.getsize(dst) != r["bytes"]:
        shutil.copyfile(r["path"], dst)

print(f"Large photographs (JPEG/PNG, 8-18 Mpx) copied to {photos_dir}/: {len(photos)}")
for r in photos:
    print(f"  {os.path.basename(r['rel']):45s} {r['w']}x{r['h']}  {r['w']*r['h']/1e6:5.1f} Mpx  ({r['pkg']})")
print(f"\n5120x2880 images copied to {big_dir}/: {len(bigs)}")
for r in bigs:
    print(f"  {big_name(r):25s} {r['fmt']:5s} {r['bytes']/1e6:5.1f} MB  ({r['pkg']}: {r['rel']})")
if not bigs:
    print("  none (plasma-workspace-wallpapers holds them; drop --no-plasma)")
PYEOF
