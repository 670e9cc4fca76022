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
binary_name="ffmpeg-linux-x86_64-v7.0.2"
python="${PYTHON:-python3}"

if [ -x "$here/bin/ffmpeg" ] && "$here/bin/ffmpeg" -hide_banner -version >/dev/null 2>&1; then
    exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 3.11 \
    --dest "$work" "imageio-ffmpeg==$wheel_version"
"$python" - "$work" "$binary_name" "$here/bin/ffmpeg" <<'PY'
import glob, os, sys, zipfile
work, name, target = sys.argv[1:]
wheel = glob.glob(os.path.join(work, "imageio_ffmpeg-*.whl"))[0]
os.makedirs(os.path.dirname(target), exist_ok=True)
with zipfile.ZipFile(wheel) as archive, open(target + ".part", "wb") as out:
    out.write(archive.read("imageio_ffmpeg/binaries/" + name))
os.chmod(target + ".part", 0o755)
os.replace(target + ".part", target)
PY
"$here/bin/ffmpeg" -hide_banner -version | head -n 1
