#!/usr/bin/env bash
# Installs the Debian packages kiln builds, tests and benchmarks with. Idempotent:
# packages already present are skipped, so a second run costs only a dpkg query.
# (Benchmarks against ONNX Runtime also need Node.js + npm; see bench/README.md.)
set -euo pipefail

packages=(
  build-essential cmake ninja-build clang-format pkg-config lld
  libonnx-dev libprotobuf-dev protobuf-compiler libdnnl-dev ocl-icd-opencl-dev libsleef-dev
  libfmt-dev libcli11-dev nlohmann-json3-dev libdlpack-dev libre2-dev libjpeg-dev libpng-dev
  libtiff-dev libwebp-dev libopenjp2-7-dev libxxhash-dev
  libgtest-dev libgmock-dev libbenchmark-dev libonnx-testdata
  python3-numpy python3-onnx python3-torch python3-torchvision
  python3-dev pybind11-dev python3-pytest python3-pip
  python3-matplotlib
  libxnnpack-dev libpthreadpool-dev
  clang-14 libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi
SUDO=""
[[ $(id -u) -ne 0 ]] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: installed ${missing[*]}"
