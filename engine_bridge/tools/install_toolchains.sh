#!/usr/bin/env bash
# Installs what the engine bridge tests need: Mono (mcs, mono, nunit-console) from Debian and the
# pinned msgpack-test-suite from npm into engine_bridge/.toolchain/ (gitignored).
# Idempotent: does nothing for a tool that is already there. Runs as root on Debian (CI, make test).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bridge="$(dirname "$here")"
toolchain="$bridge/.toolchain"

need_apt=()
command -v mcs >/dev/null 2>&1 || need_apt+=(mono-devel)
command -v mono >/dev/null 2>&1 || need_apt+=(mono-devel)
command -v nunit-console >/dev/null 2>&1 || need_apt+=(nunit-console)
# The NUnit 2.6 framework assembly that the C# tests compile against.
if ! ls /usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll >/dev/null 2>&1; then
    need_apt+=(libnunit-cil-dev)
fi

if [ "${#need_apt[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "install_toolchains: apt-get install ${need_apt[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        mono-devel nunit-console libnunit-cil-dev >/dev/null
fi

suite="$toolchain/node_modules/msgpack-test-suite/dist/msgpack-test-suite.json"
if [ ! -f "$suite" ] || ! cmp -s "$here/package-lock.json" "$toolchain/package-lock.json"; then
    echo "install_toolchains: npm ci msgpack-test-suite into $toolchain"
    mkdir -p "$toolchain"
    cp "$here/package.json" "$here/package-lock.json" "$toolchain/"
    (cd "$toolchain" && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "install_toolchains: mcs $(command -v mcs), mono $(command -v mono), nunit-console $(command -v nunit-console)"
echo "install_toolchains: msgpack-test-suite at $suite"
