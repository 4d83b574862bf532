#!/usr/bin/env bash
# The prepared check of the gpu.js backend on a machine with a GPU and no network.
#
#   bash apps/bench/scripts/gpu-check.sh prepare   # here: build, bundle, fetch what the GPU machine lacks
#   bash apps/bench/scripts/gpu-check.sh run OUT   # there (device: carry .gpu-carry): measure, check, report
#
# prepare bundles the backends measurement (src/backends/device.ts) into one file, builds headless-gl
# (the optional 'gl' package: ~5 minutes, needs libxi-dev, libx11-dev, libxext-dev) and downloads
# the Debian packages for Xvfb and the GL loaders, all into .gpu-carry/ (git-ignored, < 64 MiB).
# run unpacks them, starts Xvfb with NVIDIA's GLX vendor library, and measures headlessgl, webasm and
# the CPU against the CPU in float64; it fails if any deviation exceeds 1e-4. Add --quick for smaller sizes.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
repo="$(cd "$here/../.." && pwd)"
carry="$repo/.gpu-carry"

prepare() {
  cd "$repo"
  npx -y pnpm@12.4.2 install --frozen-lockfile >/dev/null
  npx -y pnpm@12.4.2 --filter @almora/bench... build >/dev/null
  rm -rf "$carry" && mkdir -p "$carry/debs" "$carry/node_modules"
  (cd "$here" && node -e "require('esbuild').buildSync({ entryPoints: ['src/backends/device.ts'], bundle: true, platform: 'node',
    format: 'cjs', target: 'node20', outfile: '$carry/gpu-check.cjs', external: ['gl'], logLevel: 'warning' })")
  # headless-gl with its runtime dependencies, its addon built here for Node $(node --version).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxi-dev libx11-dev libxext-dev pkg-config >/dev/null
  (cd "$carry" && npm install --no-save --ignore-scripts --no-audit --no-fund --omit=dev gl@8.1.6 >/dev/null)
  (cd "$carry/node_modules/gl" && npx -y node-gyp@11 rebuild >/dev/null 2>&1)
  # Keep what gl needs at run time: its addon and the JavaScript it requires, nothing of the build.
  (cd "$carry" && node -e "
    const fs = require('fs'), path = require('path');
    const keep = new Set(), buildOnly = new Set(['nan', 'node-gyp', 'node-abi', 'prebuild-install']);
    const visit = (name) => {
      if (keep.has(name) || buildOnly.has(name)) return;
      keep.add(name);
      const pkg = JSON.parse(fs.readFileSync(path.join('node_modules', name, 'package.json'), 'utf8'));
      Object.keys(pkg.dependencies ?? {}).forEach(visit);
    };
    visit('gl');
    for (const entry of fs.readdirSync('node_modules')) {
      const names = entry.startsWith('@') ? fs.readdirSync(path.join('node_modules', entry)).map((n) => entry + '/' + n) : [entry];
      for (const name of names) if (!keep.has(name) && !name.startsWith('.')) fs.rmSync(path.join('node_modules', name), { recursive: true, force: true });
    }")
  rm -rf "$carry/node_modules/gl/angle" "$carry/node_modules/gl/deps" "$carry/node_modules/gl/build/Release/obj.target"
  find "$carry/node_modules/gl/build" -name '*.a' -delete
  # Xvfb and the GL loaders, amd64, without touching this machine's package state.
  local lists=/tmp/almora-amd64-lists
  mkdir -p "$lists/partial"
  local o=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists="$lists")
  apt-get "${o[@]}" update -qq
  (cd "$carry/debs" && apt-get "${o[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 \
    xvfb xserver-common x11-xkb-utils xkb-data libxfont2 libfontenc1 libpixman-1-0 libxkbfile1 libxshmfence1 \
    libgl1-mesa-dri libglx-mesa0 libglapi-mesa libdrm2 libdrm-amdgpu1 libllvm15 libsensors5 libz3-4 libedit2 libxcb-glx0 \
    libxcb-dri2-0 libxcb-dri3-0 libxcb-present0 libxcb-sync1 libxcb-xfixes0 libxcb-randr0 libxxf86vm1 libunwind8 libelf1 xauth libxmuu1)
  du -sh "$carry"
}

run() {
  local out="${1:?run needs an output folder}"
  shift
  if [ ! -f "$carry/gpu-check.cjs" ]; then echo "no $carry/gpu-check.cjs: run 'prepare' first and carry .gpu-carry" >&2; exit 2; fi
  command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu.txt" || echo "no nvidia-smi"
  if ! command -v Xvfb >/dev/null; then
    for f in "$carry"/debs/*.deb; do dpkg -x "$f" /; done
    ldconfig
  fi
  # GLX through NVIDIA's vendor library where the driver provides one; Mesa's otherwise.
  if ls /usr/lib/x86_64-linux-gnu/libGLX_nvidia.so.0 /usr/local/nvidia/lib64/libGLX_nvidia.so.0 >/dev/null 2>&1; then
    export __GLX_VENDOR_LIBRARY_NAME=nvidia
    export LD_LIBRARY_PATH="/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}"
  fi
  Xvfb :93 -screen 0 1024x768x24 +extension GLX >/tmp/xvfb.log 2>&1 &
  local xvfb=$!
  sleep 2
  DISPLAY=:93 node "$carry/gpu-check.cjs" "$out" "$@" 2>&1 | tee "$out/gpu-check.log"
  local status=${PIPESTATUS[0]}
  kill "$xvfb" 2>/dev/null || true
  return "$status"
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: $0 prepare | run OUT [--quick]" >&2; exit 2 ;;
esac
