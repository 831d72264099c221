#!/usr/bin/env bash
# Build KenLM's command-line tools (lmplz, build_binary) from the kenlm source
# distribution on PyPI. Usage: lm/build_kenlm.sh [PREFIX]   (default: build/kenlm)
# The binaries land in PREFIX/bin. Set KENLM_APT=1 to install the Debian build
# dependencies first (needs root), KENLM_JOBS to choose the number of compile jobs.
set -euo pipefail
KENLM_VERSION="${KENLM_VERSION:-0.3.0}"
PREFIX="$(mkdir -p "${1:-build/kenlm}" && cd "${1:-build/kenlm}" && pwd)"
JOBS="${KENLM_JOBS:-$(nproc)}"
PYTHON="${PYTHON:-python3}"

if [[ "${KENLM_APT:-0}" == "1" ]]; then
    apt-get update
    apt-get install -y --no-install-recommends build-essential cmake \
        libboost-program-options-dev libboost-system-dev libboost-thread-dev \
        libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev libeigen3-dev
fi

if [[ -x "$PREFIX/bin/lmplz" && -x "$PREFIX/bin/build_binary" ]]; then
    echo "lmplz and build_binary already in $PREFIX/bin"
    exit 0
fi

SRC="$PREFIX/src"
mkdir -p "$SRC"
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
    "$PYTHON" -m pip download --no-deps --no-binary kenlm "kenlm==$KENLM_VERSION" -d "$PREFIX/sdist"
    tar -xzf "$PREFIX"/sdist/kenlm-"$KENLM_VERSION".tar.gz -C "$SRC" --strip-components=1
fi

cmake -S "$SRC" -B "$PREFIX/cmake-build" -DCMAKE_BUILD_TYPE=Release \
    -DKENLM_MAX_ORDER=6 -DBUILD_TESTING=OFF -DCOMPILE_TESTS=OFF
cmake --build "$PREFIX/cmake-build" --target lmplz build_binary -j "$JOBS"
mkdir -p "$PREFIX/bin"
cp "$PREFIX/cmake-build/bin/lmplz" "$PREFIX/cmake-build/bin/build_binary" "$PREFIX/bin/"
echo "built $PREFIX/bin/lmplz and $PREFIX/bin/build_binary"
