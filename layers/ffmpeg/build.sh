#!/usr/bin/env bash
# Puts a static ffmpeg at layers/ffmpeg/bin/ffmpeg, taken from a pinned PyPI wheel.
#
# imageio-ffmpeg 0.6.0 ships a fully static ffmpeg 7.0.2 build for linux x86_64 that
# runs on any Lambda runtime (0.8.x ships a dynamically linked one). Lambda unpacks a
# layer under /opt, so this folder zipped becomes /opt/bin/ffmpeg, which is on PATH.
# The binary is GPLv3 (built with --enable-gpl --enable-version3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
wheel_version="0.6.0"
# The wheel and the binary in it, pinned: pip refuses a wheel with another hash, and the
# binary is checked again before it is used or packaged.
wheel_sha256="c7e46fcec401dd990405049d2e2f475e2b397779df2519b544b8aab515195282"
binary_sha256="e7e7fb30477f717e6f55f9180a70386c62677ef8a4d4d1a5d948f4098aa3eb99"
binary_name="ffmpeg-linux-x86_64-v7.0.2"
python="${PYTHON:-python3}"

binary_is_pinned() {
    [ -x "$1" ] && echo "$binary_sha256  $1" | sha256sum --check --status
}

if binary_is_pinned "$here/bin/ffmpeg"; then
    touch "$here/bin/ffmpeg"  # newer than this script: make need not ask again
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "imageio-ffmpeg==$wheel_version --hash=sha256:$wheel_sha256" > "$work/requirements.txt"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
    --platform manylinux2014_x86_64 --python-version 3.11 \
    --dest "$work" -r "$work/requirements.txt"
"$python" - "$work" "$binary_name" "$here/bin/ffmpeg" <<'PY'
import glob, os, sys, zipfile
work, name, target = sys.argv[1:]
wheel = glob.glob(os.path.join(work, "imageio_ffmpeg-*.whl"))[0]
os.makedirs(os.path.dirname(target), exist_ok=True)
with zipfile.ZipFile(wheel) as archive, open(target + ".part", "wb") as out:
    out.write(archive.read("imageio_ffmpeg/binaries/" + name))
os.chmod(target + ".part", 0o755)
PY
if ! binary_is_pinned "$here/bin/ffmpeg.part"; then
    echo "ffmpeg from imageio-ffmpeg $wheel_version does not have the pinned checksum" >&2
    exit 1
fi
mv "$here/bin/ffmpeg.part" "$here/bin/ffmpeg"
"$here/bin/ffmpeg" -hide_banner -version | head -n 1
