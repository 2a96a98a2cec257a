#!/usr/bin/env bash
# Build llama.cpp's OpenAI-compatible `llama-server` (CPU) from source, for the test of the `openai`
# backend against a real third-party engine (tests/repocomplete/test_openai_real_servers.py).
#
#   scripts/build_llama_server.sh [DEST]     # default DEST: build/llama.cpp; binary: DEST/bin/llama-server
#
# The sources are llama.cpp as vendored in the llama-cpp-python sdist on the package index (the one
# registry these machines reach), downloaded fresh (no cache) and checked against a pinned sha256.
# Only the server target is built. GGML_NATIVE=OFF: a -march=native build on an AMX CPU segfaulted in
# every decode here (issue 22); the portable x86-64 build still uses AVX2/FMA/F16C. LLAMA_CURL=OFF,
# LLAMA_OPENSSL=OFF, LLAMA_USE_PREBUILT_UI=OFF: nothing is fetched from a hub, at build or at run time
# (the server loads local GGUF files; its web page is the minimal built-in one).
set -euo pipefail

VERSION=0.3.36
URL="https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/llama_cpp_python-${VERSION}.tar.gz"
SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

dest=$(realpath -m "${1:-build/llama.cpp}")
jobs=${JOBS:-$(nproc)}
for tool in curl cmake c++ sha256sum tar; do
  command -v "$tool" >/dev/null || { echo "build_llama_server: $tool is not installed" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)

echo "build_llama_server: downloading llama-cpp-python ${VERSION} sources (76 MB)"
curl -fsSL --retry 3 -o "$work/src.tar.gz" "$URL"
echo "$SHA256  $work/src.tar.gz" | sha256sum -c --quiet -
tar -xzf "$work/src.tar.gz" -C "$work" --strip-components=3 "llama_cpp_python-${VERSION}/vendor/llama.cpp"
rm -f "$work/src.tar.gz" "$work/.git"  # .git: a submodule pointer into llama-cpp-python's repository
downloaded=$(date +%s)

cmake -S "$work" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_USE_PREBUILT_UI=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  >"$work/configure.log" 2>&1 || { tail -40 "$work/configure.log" >&2; exit 1; }
echo "build_llama_server: compiling llama-server with $jobs jobs (about 600 CPU-seconds: 5-6 minutes on 2 idle cores)"
cmake --build "$work/build" --target llama-server -j "$jobs" >"$work/build.log" 2>&1 || { tail -40 "$work/build.log" >&2; exit 1; }

# Written next to its final name, then renamed: an interrupted build never leaves half a binary.
mkdir -p "$dest/bin"
cp "$work/build/bin/llama-server" "$dest/bin/.llama-server.tmp"
mv "$dest/bin/.llama-server.tmp" "$dest/bin/llama-server"
done_at=$(date +%s)
echo "build_llama_server: $dest/bin/llama-server ($("$dest/bin/llama-server" --version 2>&1 | grep -m1 version || true));" \
  "download $((downloaded - started)) s, build $((done_at - downloaded)) s"
