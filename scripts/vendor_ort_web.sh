#!/usr/bin/env bash
# Re-create apucodec/tools/listen/web/ort/ from the npm package onnxruntime-web (needs npm and xz).
# Bumping the version: change VERSION here and ORT_WEB_VERSION + the sha256s in apucodec/tools/listen/vendor.py.
set -euo pipefail
VERSION=1.31.1
DEST="$(cd "$(dirname "$0")/.." && pwd)/apucodec/tools/listen/web/ort"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack -q "onnxruntime-web@$VERSION" >/dev/null && tar xzf "onnxruntime-web-$VERSION.tgz")
cp "$WORK/package/dist/ort.webgpu.bundle.min.mjs" "$DEST/"
xz -9e -T1 -c "$WORK/package/dist/ort-wasm-simd-threaded.asyncify.wasm" >"$DEST/ort-wasm-simd-threaded.asyncify.wasm.xz"
sha256sum "$WORK/package/dist/ort.webgpu.bundle.min.mjs" "$WORK/package/dist/ort-wasm-simd-threaded.asyncify.wasm"
