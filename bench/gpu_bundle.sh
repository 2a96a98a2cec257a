#!/bin/bash
# Builds .whl/ (git-ignored via .git/info/exclude) for bench/gpu_verify.sh: the pinned packages the device
# image lacks or holds at other versions, as Python 3.12 wheels, with bitsandbytes cut to its CUDA 13.0 and CPU
# libraries and the language pack to the grammars the run parses (the call carries at most 64 MiB), plus
# Qwen2.5-Coder's configs and tokenizer from the prepared models in the cache.
set -eu
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
rm -rf .whl; mkdir -p .whl
PLAT="--no-deps --only-binary=:all: --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64
      --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_34_x86_64"
pip() { .venv/bin/python -m pip download -q $PLAT -d "$@"; }
pip .whl transformers==5.24.0 tokenizers==0.23.3 peft==0.21.2 tree-sitter==0.26.1 tree-sitter-c-sharp==0.23.5 \
    tree-sitter-embedded-template==0.25.0 tree-sitter-yaml==0.7.2 gitpython==3.2.1 gitdb==4.0.12 smmap==5.0.3
trim=$(mktemp -d); pip "$trim" bitsandbytes==0.50.2 tree-sitter-language-pack==0.13.0
(cd "$trim" && for w in *.whl; do unzip -q -o "$w"; done && rm -f ./*.whl \
  && find bitsandbytes -name 'libbitsandbytes_*.so' ! -name '*cuda130*' ! -name '*cpu*' -delete \
  && find tree_sitter_language_pack/bindings -name '*.so' ! -regex '.*/\(python\|json\|toml\|markdown\|markdown_inline\|r\|racket\)\.abi3\.so' -delete \
  && tar czf - .) > .whl/trimmed.tar.gz
rm -rf "$trim"
cache=${REPOCOMPLETE_CACHE_DIR:-$HOME/.cache/repocomplete}
for size in 0.5 1.5; do
  dir=$(grep -l "Qwen2.5 Coder $size" "$cache"/prepared/*/config.json | head -1 | xargs dirname)
  dst=.whl/qwen${size/./}; mkdir -p "$dst"
  cp "$dir"/config.json "$dir"/tokenizer_config.json "$dir"/generation_config.json "$dst"/
  gzip -9c "$dir"/tokenizer.json > "$dst"/tokenizer.json.gz
done
du -sh .whl
