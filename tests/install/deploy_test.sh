#!/bin/bash
# Deploying a model as a user would (docs/deploying.md): install kiln into a temp prefix,
# compile tiny_cnn with the installed kiln for a portable CPU level, build the example hosts
# (examples/host: C linked to model.so, C++ loading it with dlopen) against the installed
# package both with CMake find_package(kiln) and with gcc + pkg-config, move model.so away,
# run it through the normal library path and through $ORIGIN, and compare with PyTorch's
# output (examples/tiny_cnn/output_y.npy, computed in float64).
# Usage: deploy_test.sh SOURCE_DIR BUILD_DIR CMAKE
set -euo pipefail
src=$1
build=$2
cmake=$3
work=$(mktemp -d /tmp/kiln-deploy.XXXXXX)
trap 'rm -rf "$work"' EXIT
unset LD_LIBRARY_PATH # nothing may come from the build tree
prefix=$work/prefix
export KILN_CACHE_DIR=${KILN_CACHE_DIR:-$work/cache}

step() { echo "== $*"; }
die() { echo "FAIL: $*" >&2; exit 1; }

step "cmake --install into $prefix"
"$cmake" --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name 'libkiln_rt.so.1' | head -1)")
for f in bin/kiln include/kiln/model.h include/kiln/model_desc.h include/kiln/kiln.hpp \
         include/kiln/weights_section.h \
         share/kiln/model_entry.c; do
  [ -e "$prefix/$f" ] || die "$f is not installed"
done
[ -e "$libdir/pkgconfig/kiln.pc" ] || die "kiln.pc is not installed"
[ -e "$libdir/cmake/kiln/kilnConfig.cmake" ] || die "kilnConfig.cmake is not installed"
readelf -d "$libdir/libkiln_rt.so.1" | grep -q 'SONAME.*\[libkiln_rt.so.1\]' ||
  die "libkiln_rt has no versioned SONAME"

step "compile with the installed kiln (--cpu x86-64-v2)"
mkdir -p "$work/build" "$work/deploy" "$work/app" "$work/bundle"
"$prefix/bin/kiln" compile "$src/examples/tiny_cnn/model.onnx" -o "$work/build/tiny.so" \
  --cpu x86-64-v2
runpath=$(readelf -d "$work/build/tiny.so" | sed -n 's/.*RUNPATH.*\[\(.*\)\]/\1/p')
[ "$runpath" = '$ORIGIN' ] || die "model.so RUNPATH is '$runpath', expected only \$ORIGIN"
readelf -d "$work/build/tiny.so" | grep -q 'NEEDED.*\[libkiln_rt.so.1\]' ||
  die "model.so does not need libkiln_rt.so.1"
"$prefix/bin/kiln" inspect "$work/build/tiny.so" | grep -q 'CPU x86-64-v2' ||
  die "kiln inspect does not say the model is built for x86-64-v2"

step "build the hosts with gcc + pkg-config"
export PKG_CONFIG_PATH=$libdir/pkgconfig
gcc -std=c99 -Wall -Werror "$src/examples/host/host.c" $(pkg-config --cflags --libs kiln) \
  "$work/build/tiny.so" -Wl,-rpath,'$ORIGIN' -o "$work/app/host_c_pc"
g++ -std=c++17 -Wall -Werror "$src/examples/host/host.cpp" $(pkg-config --cflags kiln) -ldl \
  -o "$work/app/host_cpp_pc"

step "build the hosts with CMake find_package(kiln)"
"$cmake" -S "$src/examples/host" -B "$work/cmake" -DCMAKE_PREFIX_PATH="$prefix" \
  -DKILN_MODEL="$work/build/tiny.so" >/dev/null
"$cmake" --build "$work/cmake" >/dev/null
cp "$work/cmake/host_c" "$work/app/host_c_cmake"
cp "$work/cmake/host_cpp" "$work/app/host_cpp_cmake"

step "move model.so away from where it was built"
mv "$work/build/tiny.so" "$work/deploy/tiny.so"
rm -rf "$work/build" "$work/cmake"
/usr/bin/python3 -c "import numpy as np, sys; \
np.load(sys.argv[1]).astype('<f4').tofile(sys.argv[2])" \
  "$src/examples/tiny_cnn/input_x.npy" "$work/x.f32"

# Without libkiln_rt on the library path or next to it, loading must fail: nothing points
# into the build tree.
if "$work/app/host_cpp_pc" "$work/deploy/tiny.so" "$work/x.f32" >/dev/null 2>"$work/err"; then
  die "model.so loaded without libkiln_rt on any path (a RUNPATH into the build tree?)"
fi
grep -q 'libkiln_rt.so.1' "$work/err" || die "unexpected load error: $(cat "$work/err")"

step "run through the normal library path (LD_LIBRARY_PATH)"
for host in host_cpp_pc host_cpp_cmake; do
  LD_LIBRARY_PATH=$libdir "$work/app/$host" "$work/deploy/tiny.so" "$work/x.f32" \
    >"$work/$host.txt"
done
for host in host_c_pc host_c_cmake; do
  LD_LIBRARY_PATH=$libdir:$work/deploy "$work/app/$host" "$work/x.f32" >"$work/$host.txt"
done

step "run a bundle through \$ORIGIN (model.so, libkiln_rt and the host in one folder)"
cp "$work/deploy/tiny.so" "$work/app/host_c_pc" "$work/bundle/"
cp -L "$libdir/libkiln_rt.so.1" "$work/bundle/"
"$work/bundle/host_c_pc" "$work/x.f32" >"$work/bundle_c.txt"
"$work/app/host_cpp_pc" "$work/bundle/tiny.so" "$work/x.f32" >"$work/bundle_cpp.txt"

# A model built for a CPU this machine is not: refused with a status and a message when the
# container is created, not killed by SIGILL. x86-64-v4 needs AVX-512 (absent on e.g. AMD
# EPYC before Zen 4); bdver4 needs XOP/FMA4, which only AMD's Bulldozer family ever had.
flags=$(grep -m1 '^flags' /proc/cpuinfo)
tested=0
for isa in x86-64-v4:avx512f bdver4:xop; do
  cpu=${isa%%:*}
  feature=${isa##*:}
  if [[ " $flags " == *" $feature "* ]]; then
    echo "this CPU has $feature: --cpu $cpu cannot be refused here (skipped)"
    continue
  fi
  step "a model for --cpu $cpu is refused on this CPU (no $feature)"
  "$prefix/bin/kiln" compile "$src/examples/tiny_cnn/model.onnx" -o "$work/deploy/$cpu.so" \
    --cpu "$cpu" >/dev/null 2>&1
  status=0
  LD_LIBRARY_PATH=$libdir "$work/app/host_cpp_pc" "$work/deploy/$cpu.so" "$work/x.f32" \
    >/dev/null 2>"$work/err" ||
    status=$?
  [ "$status" = 1 ] || die "--cpu $cpu model: host exited with $status, expected 1 (SIGILL is 132)"
  grep -q "KILN_ERR_DEVICE: this model was compiled for CPU '$cpu' and needs .*$feature" \
    "$work/err" || die "--cpu $cpu model: unexpected error: $(cat "$work/err")"
  cat "$work/err"
  status=0
  "$prefix/bin/kiln" run "$work/deploy/$cpu.so" --input "x=$src/examples/tiny_cnn/input_x.npy" \
    2>"$work/err" || status=$?
  [ "$status" = 1 ] && grep -q "lacks" "$work/err" || die "kiln run of a --cpu $cpu model"
  "$prefix/bin/kiln" inspect "$work/deploy/$cpu.so" | grep -q "cannot run it (lacks.*$feature" ||
    die "kiln inspect does not say this CPU cannot run a --cpu $cpu model"
  tested=$((tested + 1))
done
[ "$tested" -gt 0 ] || echo "SKIPPED: this CPU has every ISA tried; no refusal was tested"

step "compare every output with PyTorch's"
/usr/bin/python3 - "$src/examples/tiny_cnn/output_y.npy" "$work"/*.txt <<'PY'
import sys
import numpy as np
ref = np.load(sys.argv[1]).astype(np.float64).ravel()
for path in sys.argv[2:]:
    got = np.loadtxt(path, dtype=np.float64).ravel()
    assert got.shape == ref.shape, f"{path}: {got.shape} values, expected {ref.shape}"
    # float32 kernels against a float64 reference: softmax outputs ~0.1 after three
    # 3x3 convs and a linear layer; float32 rounding stays far below 1e-5 absolute.
    err = np.max(np.abs(got - ref))
    print(f"{path.rsplit('/', 1)[1]}: max |kiln - torch| = {err:.2e}")
    assert err < 1e-5, f"{path}: max abs error {err} >= 1e-5"
PY
echo "deploy test passed"
