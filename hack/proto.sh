#!/usr/bin/env bash
# Generates the Go code of the wire API (api/encoder/v1/encoder.proto) with
# Debian's protoc and the protoc-gen-go / protoc-gen-go-grpc versions pinned
# as tools in go.mod.
#   hack/proto.sh generate   rewrite the committed *.pb.go files
#   hack/proto.sh check      fail if the committed files differ from a fresh run
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-generate}
command -v protoc >/dev/null || { echo "protoc not found: apt-get install protobuf-compiler" >&2; exit 1; }

bin=$(mktemp -d)
out=$(mktemp -d)
trap 'rm -rf "$bin" "$out"' EXIT
go build -o "$bin/" google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

protos=(api/encoder/v1/encoder.proto)
protoc --proto_path=. \
  --plugin=protoc-gen-go="$bin/protoc-gen-go" --plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
  --go_out="$out" --go_opt=paths=source_relative \
  --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
  "${protos[@]}"

case "$mode" in
generate)
  for f in $(cd "$out" && find . -name '*.go'); do
    tmp="$f.tmp"
    cp "$out/$f" "$tmp" && mv "$tmp" "$f"
  done
  ;;
check)
  status=0
  for f in $(cd "$out" && find . -name '*.go'); do
    if ! cmp -s "$out/$f" "$f"; then
      echo "generated file $f is out of date: run 'make generate-proto'" >&2
      status=1
    fi
  done
  exit $status
  ;;
*)
  echo "usage: $0 generate|check" >&2
  exit 2
  ;;
esac
