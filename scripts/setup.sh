#!/usr/bin/env bash
# Bring a machine to the point where `make render` and `make test` work.
#
# Idempotent: when everything is already present it only checks and returns in seconds.
#   1. system packages (LaTeX for MathTex, Cairo/Pango headers for manim's wheels' fallbacks)
#   2. a Python >= 3.11 virtualenv in .venv
#   3. `pip install -e '.[dev]'`, re-run only when pyproject.toml changed since the last
#      successful install (its hash is kept in .venv/.convviz-setup-stamp)
#
# `--browser` (used by `make test`) also installs Debian's chromium, which the web-page
# tests drive headless through Playwright's driver; no browser is downloaded elsewhere.
set -euo pipefail

BROWSER=0
for arg in "$@"; do
    case "$arg" in
        --browser) BROWSER=1 ;;
        *) printf 'setup: error: unknown option %s (use --browser)\n' "$arg" >&2; exit 2 ;;
    esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV=.venv
STAMP="$VENV/.convviz-setup-stamp"
PYTHON="${PYTHON:-python3}"
export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(
    libcairo2-dev
    libpango1.0-dev
    pkg-config
    texlive-latex-base
    texlive-latex-extra
    texlive-latex-recommended
    texlive-fonts-recommended
    dvisvgm
    cm-super-minimal
)
BROWSER_PACKAGES=(chromium)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# --- 1. system packages ---------------------------------------------------------------
is_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

install_system_packages() {
    if ! command -v dpkg-query >/dev/null 2>&1; then
        say "not a Debian system: skipping system packages (need LaTeX, dvisvgm, Cairo, Pango)"
        return 0
    fi
    local missing=()
    local pkg
    local wanted=("${APT_PACKAGES[@]}")
    ((BROWSER)) && wanted+=("${BROWSER_PACKAGES[@]}")
    for pkg in "${wanted[@]}"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    # Debian's own python3 ships venv support separately.
    if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
        missing+=(python3-venv)
    fi
    if ((${#missing[@]} == 0)); then
        say "system packages present"
        return 0
    fi
    local sudo=()
    if ((EUID != 0)); then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            die "missing ${missing[*]}; run as root or with passwordless sudo (or install them yourself)"
        fi
    fi
    say "installing ${missing[*]}"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# --- 2. virtualenv --------------------------------------------------------------------
python_ok() {
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1
}

create_venv() {
    if [[ -x "$VENV/bin/python" ]] && python_ok "$VENV/bin/python"; then
        say "virtualenv $VENV present"
        return 0
    fi
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; convviz needs Python >= 3.11"
    python_ok "$PYTHON" || die "convviz needs Python >= 3.11, but $PYTHON is $("$PYTHON" -V 2>&1)"
    if [[ -e "$VENV" ]]; then
        say "replacing unusable virtualenv $VENV"
        rm -rf "$VENV"
    fi
    say "creating virtualenv $VENV with $("$PYTHON" -V 2>&1)"
    "$PYTHON" -m venv "$VENV"
}

# --- 3. Python packages ---------------------------------------------------------------
install_python_packages() {
    local want have=""
    want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    [[ -f "$STAMP" ]] && have="$(cat "$STAMP")"
    if [[ "$want" == "$have" ]]; then
        say "python packages up to date"
        return 0
    fi
    say "installing convviz and its dev dependencies into $VENV"
    local log="$VENV/.convviz-pip.log"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check -e '.[dev]' >"$log" 2>&1; then
        tail -n 30 "$log" >&2
        die "pip install failed (full log: $log)"
    fi
    printf '%s\n' "$want" >"$STAMP"
}

install_system_packages
create_venv
install_python_packages
say "ready"
