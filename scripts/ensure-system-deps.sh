#!/usr/bin/env bash
# System packages the test suites need beyond Node 20 and pnpm: Debian's Chromium (with Mesa's software
# OpenGL drivers) for the headless-browser WebGPU tests of @piflow/backend-webgpu, nginx for the teacher
# server's tests, and the Fashion-MNIST images (dataset-fashion-mnist) for @piflow/datasets and the CLI. Idempotent and quiet:
# installs only what is missing, and only as root with apt-get (elsewhere it says what to install).
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
for pkg in libgl1-mesa-dri libegl-mesa0; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
# nginx: the load balancer in front of two teacher servers in @piflow/teacher-server's tests.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ "${#need[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-system-deps: missing ${need[*]}; install them (Debian: apt-get install -y ${need[*]})" \
    "for the headless-browser, teacher-server and Fashion-MNIST tests." >&2
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-liberation >/dev/null
echo "ensure-system-deps: installed ${need[*]}"
