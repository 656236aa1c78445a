#!/usr/bin/env bash
# Fuzzes the report parser and the token decoder for a bounded time each.
#
#   bash fuzz/run.sh                  # 60 s per target
#   FUZZ_SECONDS=600 bash fuzz/run.sh
#
# A crash stops the run and leaves the input under fuzz/artifacts/<target>/;
# `cargo fuzz run <target> <file>` replays it.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
# cargo-fuzz passes flags that only nightly compilers take by default;
# RUSTC_BOOTSTRAP lets the installed stable compiler accept them.
export RUSTC_BOOTSTRAP=1

mkdir -p fuzz/corpus/report_parser fuzz/corpus/token_decoder
cp reports/example.md fuzz/corpus/report_parser/example.md
printf '1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' > fuzz/corpus/token_decoder/shape

for target in report_parser token_decoder; do
  echo "== $target, ${seconds} s"
  cargo fuzz run "$target" -- -max_total_time="$seconds" -max_len=65536
done
