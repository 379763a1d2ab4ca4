#!/bin/sh
# Runs the real Deno binary from node_modules (not the npm wrapper, which leaves Deno orphaned
# when signalled): `exec` hands this process to Deno, so Ctrl-C and SIGTERM reach it directly.
here=$(dirname "$0")
for bin in "$here/../node_modules/@deno/linux-x64-glibc/deno" "$here/../node_modules/@deno/linux-arm64-glibc/deno" \
  "$here/../node_modules/@deno/darwin-arm64/deno" "$here/../node_modules/@deno/darwin-x64/deno"; do
  [ -x "$bin" ] && exec "$bin" "$@"
done
exec "$here/../node_modules/.bin/deno" "$@"
