#!/usr/bin/env bash
# Packs what a GPU machine needs to run ParaDiT into .gpu/ (git-ignored): node (xz), the CLI bundle,
# koffi with its linux-x64 binary, and any extra paths given as arguments (copied under .gpu/extra/).
# On the device: `bash .gpu/setup.sh` unpacks node to /tmp/node/bin/node and puts it on PATH
# (source it: `. .gpu/setup.sh`). Carry `.gpu` in the device call.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
node scripts/build.mjs
rm -rf .gpu/node_modules .gpu/paradit.cjs .gpu/paradit.cjs.map
mkdir -p .gpu/node_modules/@koromix
[ -f .gpu/node.xz ] || xz -T0 -c "$(command -v node)" > .gpu/node.xz
cp packages/cli/dist/paradit.cjs .gpu/
koffi_dir=$(ls -d node_modules/.pnpm/koffi@*/node_modules/koffi | head -1)
cp -rL "$koffi_dir" .gpu/node_modules/koffi
native=$(ls -d node_modules/.pnpm/@koromix+koffi-linux-x64@*/node_modules/@koromix/koffi-linux-x64 | head -1)
mkdir -p .gpu/node_modules/@koromix/koffi-linux-x64
cp -L "$native"/package.json "$native"/index.js .gpu/node_modules/@koromix/koffi-linux-x64/
cp -rL "$native"/linux_x64 .gpu/node_modules/@koromix/koffi-linux-x64/
cat > .gpu/setup.sh <<'EOS'
# Source on the device: unpacks node and puts it on PATH; NODE_PATH finds koffi.
mkdir -p /tmp/node/bin
[ -x /tmp/node/bin/node ] || xz -dc "$(dirname "${BASH_SOURCE[0]}")/node.xz" > /tmp/node/bin/node
chmod +x /tmp/node/bin/node
export PATH=/tmp/node/bin:$PATH
export NODE_PATH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/node_modules
export LD_LIBRARY_PATH=/usr/local/cuda/lib64:/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}
EOS
du -sh .gpu
