#!/bin/sh
# Builds out/sample-app, one executable with its build id and commit baked in. fleetship's build
# worker runs it as `sh build.sh` with FLEETSHIP_BUILD_ID and FLEETSHIP_COMMIT_SHA set.
# SAMPLE_APP_PAD_MIB=N appends N MiB of deterministic bytes (seeded by SAMPLE_APP_PAD_SEED,
# default 1) after the ELF, for tests that need a large artifact; the binary still runs.
set -eu
cd "$(dirname "$0")"

build_id=${FLEETSHIP_BUILD_ID:-dev}
commit=${FLEETSHIP_COMMIT_SHA:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
pad_mib=${SAMPLE_APP_PAD_MIB:-0}
pad_seed=${SAMPLE_APP_PAD_SEED:-1}
for value in "$build_id" "$commit"; do
  case $value in
  "" | *[!A-Za-z0-9._-]*) echo "build.sh: refusing build id or commit '$value'" >&2 && exit 2 ;;
  esac
done
for value in "$pad_mib" "$pad_seed"; do
  case $value in
  "" | *[!0-9]*) echo "build.sh: SAMPLE_APP_PAD_MIB and _SEED must be integers" >&2 && exit 2 ;;
  esac
done

mkdir -p out
printf '#define SAMPLE_APP_BUILD_ID "%s"\n#define SAMPLE_APP_COMMIT_SHA "%s"\n' \
  "$build_id" "$commit" >out/build-info.h
echo "compiling sample-app: build $build_id, commit $commit"
${CC:-cc} -O2 -Wall -Wextra -Iout -o out/sample-app.tmp main.c
if [ "$pad_mib" -gt 0 ]; then
  echo "appending $pad_mib MiB of padding (seed $pad_seed)"
  ${CC:-cc} -O2 -Wall -o out/pad pad.c
  out/pad "$pad_mib" "$pad_seed" >>out/sample-app.tmp
fi
mv out/sample-app.tmp out/sample-app
echo "built out/sample-app: $(wc -c <out/sample-app) bytes"
