#!/bin/sh
# Build numpy's wheel from its source distribution, at the runtime lock's version and hash, without
# BLAS or LAPACK, into /wheels: the `numpy-source` stage of Dockerfile.slim and Dockerfile.distroless.
#
# The service never multiplies matrices with numpy (ONNX Runtime runs the model; numpy holds
# arrays, compares bounds and rounds), so the OpenBLAS and libgfortran the PyPI wheel bundles never
# run: a quarter of the image (docs/ARCHITECTURE.md, "numpy without BLAS"). The build tools come
# from their own lock (requirements/numpy-build.txt), hash-checked too; the compilers stay in this
# stage. Usage: build_numpy.sh RUNTIME_LOCK BUILD_LOCK "MESON_OPTIONS..." (run as root, in a
# Debian-based image with or without Python).
set -eu
runtime_lock=$1 build_lock=$2 options=$3

apt-get update
packages="gcc g++"
command -v python3 >/dev/null && python3 -c 'import ensurepip' 2>/dev/null || packages="$packages python3-venv"
# shellcheck disable=SC2086  # a list of package names
apt-get install --yes --no-install-recommends --no-install-suggests $packages
include=$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
[ -e "$include/Python.h" ] || apt-get install --yes --no-install-recommends --no-install-suggests python3-dev
rm -rf /var/lib/apt/lists/*

python3 -m venv /build
if [ -s /run/secrets/pip_cert ]; then export PIP_CERT=/run/secrets/pip_cert; fi
pip="/build/bin/pip --disable-pip-version-check --no-cache-dir"
$pip install --require-hashes --no-deps -r "$build_lock"
# numpy's entry of the runtime lock (its pin and every hash, the sdist's among them), with the
# meson options as per-requirement settings: pip passes command-line --config-settings only to
# requirements named on the command line, never to those of a file (pypa/pip#12310).
awk '/^numpy==/ { found = 1 } found && !/\\$/ { print $0 " \\"; exit } found { print }' "$runtime_lock" > /tmp/numpy.txt
for option in $options; do printf '    --config-settings=setup-args=%s \\\n' "$option"; done >> /tmp/numpy.txt
echo '    --config-settings=setup-args=-Dallow-noblas=true' >> /tmp/numpy.txt
grep -q '^numpy==' /tmp/numpy.txt
started=$(date +%s)
PATH="/build/bin:$PATH" $pip wheel --no-build-isolation --no-deps --require-hashes --no-binary numpy \
    -r /tmp/numpy.txt --wheel-dir /wheels
echo "numpy built from source in $(( $(date +%s) - started ))s with: $options"

# The wheel must be what was asked for: a silent fallback to numpy's defaults fails the build.
$pip install --quiet --no-deps --target /tmp/numpy-check /wheels/numpy-*.whl
PYTHONPATH=/tmp/numpy-check python3 -c '
import sys, numpy
blas = numpy.__config__.CONFIG["Build Dependencies"]["blas"]["name"]
print("numpy", numpy.__version__, "BLAS:", blas)
sys.exit(blas != "none")'
rm -rf /tmp/numpy-check
