# shellcheck shell=bash
# Shared by scripts/serve and scripts/test: make sure .venv exists and holds exactly
# requirements.lock plus rushgate itself (editable). Sourced, not run.
#
# Knobs (environment):
#   RUSHGATE_PYTHON  the interpreter to build the venv from (default: python3, or the newest
#                    python3.1x on PATH if python3 is older than 3.11)
#   RUSHGATE_VENV    where the venv lives (default: <repo>/.venv)
#
# Re-running is cheap: the install is skipped while the stamp in the venv matches the hash of
# requirements.lock + pyproject.toml.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RUSHGATE_VENV:-$ROOT/.venv}"
STAMP="$VENV/.rushgate-install-stamp"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

say() { printf '%s\n' "$*" >&2; }
join() {
    local IFS=,
    local joined="$*"
    printf '%s\n' "${joined//,/, }"
}
die() {
    say "error: $*"
    exit 1
}

# Run a command with its output hidden; show the output only if it fails.
quietly() {
    local what=$1 log status=0
    shift
    log="$(mktemp)"
    "$@" >"$log" 2>&1 || status=$?
    if ((status != 0)); then
        say "error: $what failed (exit $status):"
        cat "$log" >&2
        rm -f "$log"
        return "$status"
    fi
    rm -f "$log"
}

_python_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }

_find_python() {
    local candidate
    if [[ -n "${RUSHGATE_PYTHON:-}" ]]; then
        _python_ok "$RUSHGATE_PYTHON" || die "RUSHGATE_PYTHON=$RUSHGATE_PYTHON is not Python 3.11+"
        printf '%s\n' "$RUSHGATE_PYTHON"
        return
    fi
    for candidate in python3 python3.13 python3.12 python3.11; do
        if command -v "$candidate" >/dev/null && _python_ok "$candidate"; then
            printf '%s\n' "$candidate"
            return
        fi
    done
    die "rushgate needs Python 3.11 or newer (python3 is $(python3 --version 2>&1 || echo missing)).
  On Debian/Ubuntu: apt-get install python3   (or set RUSHGATE_PYTHON to a 3.11+ interpreter)"
}

# Debian and Ubuntu ship venv/ensurepip separately, in python3-venv.
_install_venv_support() {
    local python=$1 minor
    minor="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
        die "$python cannot create virtual environments (venv/ensurepip missing).
  On Debian/Ubuntu run:  sudo apt-get install python3-venv python$minor-venv
  then run this script again."
    fi
    say "installing python3-venv (venv/ensurepip missing) …"
    export DEBIAN_FRONTEND=noninteractive
    quietly "apt-get update" apt-get update -q
    local packages=(python3-venv)
    if apt-cache show "python$minor-venv" >/dev/null 2>&1; then
        packages+=("python$minor-venv")
    fi
    quietly "apt-get install ${packages[*]}" apt-get install -y -q "${packages[@]}"
}

_create_venv() {
    local python
    python="$(_find_python)" || exit 1
    say "creating $VENV with $python …"
    rm -rf "$VENV"
    if ! "$python" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        _install_venv_support "$python"
        quietly "$python -m venv $VENV" "$python" -m venv "$VENV" || exit 1
    fi
}

_venv_usable() {
    [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1 &&
        _python_ok "$VENV/bin/python"
}

_install_hash() {
    {
        cat "$ROOT/requirements.lock" "$ROOT/pyproject.toml"
        "$VENV/bin/python" -c 'import sys; print(sys.version)'
    } | sha256sum | cut -d' ' -f1
}

# Every exact pin in pyproject (runtime and extras) must be the version the lock has:
# `pip install --no-deps -e .` would not notice a dependency missing from the lock.
_check_lock_matches_pyproject() {
    "$VENV/bin/python" - "$ROOT/pyproject.toml" "$ROOT/requirements.lock" <<'PY'
import re, sys, tomllib

project = tomllib.load(open(sys.argv[1], "rb"))["project"]
wanted = list(project["dependencies"])
for extra in project.get("optional-dependencies", {}).values():
    wanted += extra
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
locked = {}
for line in open(sys.argv[2]):
    m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
    if m:
        locked[norm(m[1])] = m[2]
problems = []
for spec in wanted:
    m = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(==\s*([^\s;,]+))?", spec)
    name = norm(m[1])
    if name not in locked:
        problems.append(f"{spec}: not in requirements.lock")
    elif m[4] and m[4] != locked[name]:
        problems.append(f"{spec}: requirements.lock has {locked[name]}")
if problems:
    print("requirements.lock is out of date with pyproject.toml (run ./scripts/lock):")
    print("\n".join("  " + p for p in problems))
    sys.exit(1)
PY
}

bootstrap_venv() {
    [[ -f "$ROOT/requirements.lock" ]] || die "$ROOT/requirements.lock is missing"
    if ! _venv_usable; then
        _create_venv
    fi
    if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(_install_hash)" ]]; then
        return 0
    fi
    # A venv made by another tool (uv, virtualenv --without-pip) may lack pip.
    if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        quietly "ensurepip" "$VENV/bin/python" -m ensurepip --upgrade || _create_venv
    fi
    say "installing dependencies into $VENV …"
    rm -f "$STAMP"
    _check_lock_matches_pyproject || exit 1
    quietly "pip install -r requirements.lock" \
        "$VENV/bin/python" -m pip install --require-hashes -r "$ROOT/requirements.lock" || exit 1
    quietly "pip install -e ." \
        "$VENV/bin/python" -m pip install --no-deps -e "$ROOT" || exit 1
    _install_hash >"$STAMP"
}
