# syntax=docker/dockerfile:1
#
# The xdna-whisper images, one target per binary, each a static binary on an
# empty base with passwd/group, a CA bundle, /tmp and a home, run as 65532:65532:
#
#   docker build --target whisper-encoder    -t ghcr.io/xdna-whisper/whisper-encoder:TAG .
#   docker build --target xdna-device-plugin -t ghcr.io/xdna-whisper/xdna-device-plugin:TAG .
#   docker build --target xdna-dra-driver    -t ghcr.io/xdna-whisper/xdna-dra-driver:TAG .
#   docker build --target whisper-operator   -t ghcr.io/xdna-whisper/whisper-operator:TAG .
#
# (add --build-arg VERSION=... --build-arg COMMIT=... --build-arg CREATED=...).
# CI has no container engine: `make images` builds the same images without one
# (hack/images, go-containerregistry). Keep the two in sync; the test
# hack/images/dockerfile_test.go compares users, entrypoints, environment and
# labels of every target here with the daemonless builder.

FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X github.com/xdna-whisper/xdna-whisper/internal/version.Version=${VERSION} -X github.com/xdna-whisper/xdna-whisper/internal/version.Commit=${COMMIT}" \
      -o /out/ ./cmd/whisper-encoder ./cmd/xdna-device-plugin ./cmd/xdna-dra-driver ./cmd/whisper-operator
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/home/nonroot /rootfs/tmp \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt \
 && chown 65532:65532 /rootfs/home/nonroot && chmod 0700 /rootfs/home/nonroot \
 && chmod 1777 /rootfs/tmp

FROM scratch AS base
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/nonroot
WORKDIR /home/nonroot
USER 65532:65532
ARG VERSION=dev
ARG COMMIT=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/xdna-whisper/xdna-whisper" \
      org.opencontainers.image.url="https://github.com/xdna-whisper/xdna-whisper"

FROM base AS whisper-encoder
COPY --from=build /out/whisper-encoder /usr/local/bin/whisper-encoder
LABEL org.opencontainers.image.title="whisper-encoder" \
      org.opencontainers.image.description="Whisper encoder: stages ONNX weights to BF16 and serves log-mel or audio in, hidden states out, on an XDNA NPU or the CPU"
ENTRYPOINT ["/usr/local/bin/whisper-encoder"]

FROM base AS xdna-device-plugin
COPY --from=build /out/xdna-device-plugin /usr/local/bin/xdna-device-plugin
LABEL org.opencontainers.image.title="xdna-device-plugin" \
      org.opencontainers.image.description="Kubernetes device plugin advertising AMD XDNA NPUs as amd.com/npu"
ENTRYPOINT ["/usr/local/bin/xdna-device-plugin"]

FROM base AS xdna-dra-driver
COPY --from=build /out/xdna-dra-driver /usr/local/bin/xdna-dra-driver
LABEL org.opencontainers.image.title="xdna-dra-driver" \
      org.opencontainers.image.description="Kubernetes DRA driver publishing AMD XDNA NPUs as npu.amd.com devices with shareable hardware contexts"
ENTRYPOINT ["/usr/local/bin/xdna-dra-driver"]

FROM base AS whisper-operator
COPY --from=build /out/whisper-operator /usr/local/bin/whisper-operator
LABEL org.opencontainers.image.title="whisper-operator" \
      org.opencontainers.image.description="Kubernetes operator for WhisperEncoder resources: weight staging, cache, encoder workloads"
ENTRYPOINT ["/usr/local/bin/whisper-operator"]
