#!/usr/bin/env bash
# README's two commands for a fresh machine, run one after the other in one shell and one
# .venv, in both orders, each order in a fresh clone of the repository:
#   demo-then-tests: the demo command (pip install ".[...]" && fastctc demo), then the test
#                    command (pip install -e ".[...]" ... && python -m pytest)
#   tests-then-demo: the same two commands the other way round
# The commands are read from README.md (the two ```bash blocks of "## On a fresh machine"),
# so they cannot drift from what users copy. Afterwards, from a folder outside the clone:
# `fastctc --version`, `python -m fastctc --help` and `import fastctc` must work, no Numba
# cache file may lie in site-packages (nor a leftover site-packages/fastctc next to an
# editable install), and a repeated `fastctc demo` must load every kernel from Numba's cache.
#
# To keep CI time down the test command runs a subset of the suite, chosen with
# PYTEST_ADDOPTS: the CLI demo test and tests/test_install.py (.ci/run runs the whole suite).
# KenLM's tools (lm/build_kenlm.sh) are compiled once and copied into the second clone (or
# taken from this repository's build/kenlm/bin when present): build/ is not tracked.
#
# Usage: .ci/readme_commands.sh                        (a clone of HEAD of this repository)
#        README_COMMANDS_REV=<commit> .ci/readme_commands.sh
# Exit status 0 when both orders pass. Otherwise it says what failed, prints the end of that
# order's log and keeps the work folder with the logs.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
REV="${README_COMMANDS_REV:-HEAD}"
SUBSET=(tests/test_cli.py::test_demo_runs tests/test_install.py)
SECTION="## On a fresh machine"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_PROGRESS_BAR=off DEBIAN_FRONTEND=noninteractive

# A clean environment: no venv of the caller, no NUMBA_CACHE_DIR (Numba's default cache
# location is what is tested). Numba's user-wide cache folder is redirected into the work
# folder (removed at the end); pip keeps its own cache, so wheels built once (kenlm) are reused.
export PIP_CACHE_DIR="${PIP_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pip}"
if [[ -n "${VIRTUAL_ENV:-}" ]]; then
    PATH="$(tr ':' '\n' <<<"$PATH" | grep -vxF "$VIRTUAL_ENV/bin" | paste -sd: -)"
fi
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME NUMBA_CACHE_DIR NUMBA_CACHE_LOCATOR_CLASSES \
    NUMBA_DISABLE_JIT NUMBA_DEBUG_CACHE PYTEST_ADDOPTS

WORK="$(mktemp -d "${TMPDIR:-/tmp}/fastctc-readme.XXXXXX")"
export XDG_CACHE_HOME="$WORK/cache"
ELSEWHERE="$WORK/elsewhere"  # an empty folder outside the clones
mkdir -p "$ELSEWHERE" "$XDG_CACHE_HOME"
FAILED=0
LOG=/dev/null

fail() {
    echo "FAILED: $*" >&2
    if [[ "$LOG" != /dev/null && -s "$LOG" ]]; then
        echo "---- end of $LOG" >&2
        tail -n 60 "$LOG" >&2
        echo "----" >&2
    fi
    FAILED=1
    return 1
}

# ---------------------------------------------------------------- README's commands
# The ```bash blocks of the section, one command per block (lines ending in a backslash are
# joined). Fails on an unterminated block or a block with more than one command.
readme_blocks() {
    awk -v section="$SECTION" '
        /^## / { in_section = ($0 == section); next }
        !in_section { next }
        !in_block && /^```bash[[:space:]]*$/ { in_block = 1; block = ""; cont = 0; next }
        in_block && /^```[[:space:]]*$/ { in_block = 0; print block; next }
        in_block && /^[[:space:]]*$/ { next }
        in_block {
            if (block != "" && !cont) multi = 1
            if (cont) sub(/^[[:space:]]+/, "")
            cont = sub(/[[:space:]]*\\$/, "")
            block = (block == "" ? $0 : block " " $0)
            next
        }
        END { if (in_block || multi) exit 1 }
    ' "$1"
}

extract() {  # checkout -> DEMO_CMD, TEST_CMD
    local out blocks=()
    if ! out="$(readme_blocks "$1/README.md")"; then
        fail "README.md: a \`\`\`bash block under '$SECTION' is unterminated or holds more" \
             "than one command"
        return 1
    fi
    [[ -n "$out" ]] && mapfile -t blocks <<<"$out"
    if [[ ${#blocks[@]} -ne 2 ]]; then
        fail "README.md: expected exactly two \`\`\`bash blocks under '$SECTION'," \
             "found ${#blocks[@]}"
        return 1
    fi
    DEMO_CMD="${blocks[0]}" TEST_CMD="${blocks[1]}"
    if [[ "$DEMO_CMD" != *"fastctc demo"* || "$TEST_CMD" != *"pytest"* ]]; then
        fail "README.md: the first command under '$SECTION' must run 'fastctc demo' and the" \
             "second 'pytest'; found [$DEMO_CMD] and [$TEST_CMD]"
        return 1
    fi
}

# ---------------------------------------------------------------- one order, one clone
clone() {  # dir
    local dir="$1" d kenlm_bin=""
    git -c safe.directory="$REPO" -c safe.directory="$REPO/.git" clone -q "$REPO" "$dir" \
        || return 1
    git -C "$dir" -c advice.detachedHead=false checkout -q "$REV" || return 1
    for d in "$REPO/build/kenlm/bin" "$WORK"/*/build/kenlm/bin; do
        if [[ -x "$d/lmplz" && -x "$d/build_binary" ]]; then kenlm_bin="$d"; break; fi
    done
    if [[ -n "$kenlm_bin" ]]; then
        mkdir -p "$dir/build/kenlm/bin" || return 1
        cp "$kenlm_bin/lmplz" "$kenlm_bin/build_binary" "$dir/build/kenlm/bin/" || return 1
        echo "KenLM tools copied from $kenlm_bin"
    fi
}

run_commands() {  # dir first second: one bash, one .venv, cwd = the clone, as a user would
    local dir="$1" first="$2" second="$3" tests=("${SUBSET[@]}")
    [[ -f "$dir/tests/test_install.py" ]] || tests=("${SUBSET[0]}")  # older revisions
    (
        set +euo pipefail  # an interactive shell's defaults
        cd "$dir" || exit 10
        export PYTEST_ADDOPTS="-q ${tests[*]}"
        echo "+ $first"
        if ! eval "$first"; then echo "the first command failed" >&2; exit 11; fi
        echo "+ $second"
        if ! eval "$second"; then echo "the second command failed" >&2; exit 12; fi
    )
}

in_venv_elsewhere() {  # command...: run from $ELSEWHERE with the clone's venv activated
    ( . "$VENV/bin/activate" && cd "$ELSEWHERE" && "$@" )
}

check() {  # description command...
    local what="$1"; shift
    echo "+ (cd $ELSEWHERE) $*" >>"$LOG"
    in_venv_elsewhere "$@" >>"$LOG" 2>&1 || { fail "[$NAME] $what, from $ELSEWHERE"; return 1; }
}

checks() {
    local site stray saved loaded
    site="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
        || { fail "[$NAME] no working python in $VENV"; return 1; }
    check "fastctc --version" fastctc --version || return 1
    check "python -m fastctc --help" python -m fastctc --help || return 1
    check "import fastctc" python -c \
        'import fastctc; print(fastctc.__version__, fastctc.__file__)' || return 1
    stray="$(find "$site" \( -name '*.nbi' -o -name '*.nbc' \) | head -n 3)"
    if [[ -n "$stray" ]]; then
        fail "[$NAME] Numba cache files in site-packages:" $stray; return 1
    fi
    if [[ "$EDITABLE" == 1 && -e "$site/fastctc" ]]; then
        fail "[$NAME] $site/fastctc left behind, shadowing the editable install"; return 1
    fi
    # Numba's cache works: after one more demo (which may compile), a repeated one compiles
    # nothing and loads its kernels from the cache.
    check "fastctc demo" fastctc demo --show 0 || return 1
    echo "+ (cd $ELSEWHERE) NUMBA_DEBUG_CACHE=1 fastctc demo --show 0" >>"$LOG"
    in_venv_elsewhere env NUMBA_DEBUG_CACHE=1 fastctc demo --show 0 >"$LOG.cache" 2>&1 \
        || { cat "$LOG.cache" >>"$LOG"; fail "[$NAME] repeated fastctc demo"; return 1; }
    saved="$(grep -c '^\[cache\] data saved' "$LOG.cache" || true)"
    loaded="$(grep -c '^\[cache\] data loaded' "$LOG.cache" || true)"
    echo "   repeated demo: $loaded kernels loaded from the cache, $saved compiled;" \
         "$(grep -m1 '^\[cache\] data loaded' "$LOG.cache" | sed 's/.*loaded from //')"
    if [[ "$saved" != 0 || "$loaded" == 0 ]]; then
        fail "[$NAME] a repeated 'fastctc demo' compiled $saved kernels and loaded $loaded" \
             "from Numba's cache (expected none and some)"
        return 1
    fi
}

scenario() {  # name editable-at-the-end first-command second-command
    NAME="$1" EDITABLE="$2"
    local dir="$WORK/$1" t0=$SECONDS rc
    LOG="$WORK/$NAME.log"
    echo "== $NAME (log: $LOG)"
    clone "$dir" >"$LOG" 2>&1 || { fail "[$NAME] git clone/checkout of $REV"; return 1; }
    extract "$dir" || return 1
    VENV="$dir/.venv"
    if [[ "$3" == demo ]]; then set -- "$1" "$2" "$DEMO_CMD" "$TEST_CMD"
    else set -- "$1" "$2" "$TEST_CMD" "$DEMO_CMD"; fi
    run_commands "$dir" "$3" "$4" >>"$LOG" 2>&1 && rc=0 || rc=$?
    if [[ $rc != 0 ]]; then
        fail "[$NAME] README's commands: the $([[ $rc == 11 ]] && echo first || echo second)" \
             "($([[ $rc == 11 ]] && echo "$3" || echo "$4")) exited non-zero"
        return 1
    fi
    echo "   README's commands ran ($((SECONDS - t0)) s)"
    checks || return 1
    echo "   ok ($((SECONDS - t0)) s)"
}

T0=$SECONDS
echo "README's fresh-machine commands in both orders, clones of $REV (work folder $WORK)"
extract "$REPO" || exit 1  # fail fast when this README.md is off
scenario demo-then-tests 1 demo tests || true
scenario tests-then-demo 0 tests demo || true
if [[ $FAILED != 0 ]]; then
    echo "readme_commands: FAILED after $((SECONDS - T0)) s; logs kept in $WORK" >&2
    exit 1
fi
rm -rf "$WORK"
echo "readme_commands: both orders passed in $((SECONDS - T0)) s"
