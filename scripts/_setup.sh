# Shared by scripts/test and scripts/demo: idempotent set-up of a fresh machine.

# setup_debian PKG...: install the Debian packages that are missing (root or sudo).
setup_debian() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    echo "== installing Debian packages: ${missing[*]}"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# setup_venv EXTRAS: create or reuse .venv and install the package with those extras.
setup_venv() {
    local spec="$1"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    local stamp=.venv/.installed
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! grep -qxF "$spec" "$stamp"; then
        echo "== installing streamguard $spec"
        .venv/bin/python -m pip install -q --upgrade pip
        .venv/bin/python -m pip install -q -e "$spec"
        echo "$spec" > "$stamp"
    fi
}
