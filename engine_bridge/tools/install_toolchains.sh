#!/usr/bin/env bash
# Installs what the engine bridge and dialogue tree tests need: Mono (mcs, mono, nunit-console) from Debian and
# the pinned npm packages (msgpack-test-suite; inkjs, the ink compiler port; yarn-bound, a Yarn Spinner
# interpreter) into engine_bridge/.toolchain/ (gitignored).
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

# Node.js and npm run the ink compiler, the Yarn interpreter and fetch the pinned npm packages.
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)

if [ "${#need_apt[@]}" -gt 0 ]; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    echo "install_toolchains: apt-get install ${need_apt[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        $(printf '%s\n' "${need_apt[@]}" | sort -u) >/dev/null
fi

suite="$toolchain/node_modules/msgpack-test-suite/dist/msgpack-test-suite.json"
inkjs="$toolchain/node_modules/inkjs/package.json"
yarn_bound="$toolchain/node_modules/yarn-bound/package.json"
if [ ! -f "$suite" ] || [ ! -f "$inkjs" ] || [ ! -f "$yarn_bound" ] \
    || ! cmp -s "$here/package-lock.json" "$toolchain/package-lock.json"; then
    echo "install_toolchains: npm ci (msgpack-test-suite, inkjs, yarn-bound) into $toolchain"
    mkdir -p "$toolchain"
    cp "$here/package.json" "$here/package-lock.json" "$toolchain/"
    (cd "$toolchain" && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "install_toolchains: mcs $(command -v mcs), mono $(command -v mono), nunit-console $(command -v nunit-console)"
echo "install_toolchains: msgpack-test-suite at $suite"
echo "install_toolchains: node $(command -v node), inkjs and yarn-bound in $toolchain/node_modules"
