# Shared by scripts/run and scripts/test: install what the build needs, build, fetch models.
# Sourced, not run. Every step is idempotent, so re-running costs seconds.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Build dependencies: cmake for llama.cpp, libclang for bindgen (the clang binary is not needed).
install_build_deps() {
    local pkgs=(cmake libclang1-14 libclang-common-14-dev)
    if command -v cmake >/dev/null && dpkg -s libclang1-14 libclang-common-14-dev >/dev/null 2>&1; then
        return
    fi
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "sotto: installing build dependencies: ${pkgs[*]}" >&2
    $sudo apt-get update -qq
    if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >/dev/null; then
        # Other Debian/Ubuntu releases ship another libclang version under the generic name.
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake libclang-dev >/dev/null
    fi
    command -v cargo >/dev/null || { echo "sotto: cargo not found; install Rust with rustup first" >&2; exit 1; }
}

build_release() {
    cargo build --release --locked -p sotto
}

fetch_models() {
    ./target/release/sotto models fetch
}

# The official openai Python client for the end-to-end tests, installed into ./.e2e-python
# (no virtual environment needed; the tests put it on PYTHONPATH).
install_e2e_python() {
    if [ -d .e2e-python/openai ]; then
        return
    fi
    echo "sotto: installing the openai Python client for the end-to-end tests" >&2
    python3 -m pip install --quiet --disable-pip-version-check --target .e2e-python "openai>=1.40,<3"
}
