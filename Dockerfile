# syntax=docker/dockerfile:1
# One Dockerfile, one final stage per deployable: each image holds only its own
# binary, runs as a non-root user and carries its crate's version.
#
#   docker build --target gateway --build-arg VERSION=0.1.0 -t paystream/gateway:0.1.0 .
#
# `make release SERVICE=gateway` (devstack/release.sh) runs exactly that with
# the version from crates/gateway/Cargo.toml. Targets: gateway, validation,
# cbs-debit, rtgs-gateway, notifications, audit, sandbox, schema-registry,
# provision and cli (the `paystream` operator CLI).
#
# Each target builds only its own binary (`cargo build -p <crate> --bin <bin>`),
# and BuildKit runs only the stages a target needs. The cargo registry and the
# target directory are cache mounts shared by all targets, so after a change to
# one service's crate only that crate (and what depends on it) is recompiled,
# and only the images whose binary changed get a new layer.

ARG RUST_IMAGE=rust:1.95-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------- build
FROM ${RUST_IMAGE} AS build
RUN apt-get update && apt-get install -y --no-install-recommends cmake libcurl4-openssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN mkdir /out
# `build-bin` builds one binary of one crate into /out.
RUN printf '%s\n' '#!/bin/sh' 'set -eu' \
      'cargo build --release --locked -p "$1" --bin "$2"' \
      'cp "target/release/$2" "/out/$2"' > /usr/local/bin/build-bin \
 && chmod +x /usr/local/bin/build-bin

FROM build AS build-gateway
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-gateway gateway
FROM build AS build-validation
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-validation validation
FROM build AS build-cbs-debit
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-cbs-debit cbs-debit
FROM build AS build-rtgs-gateway
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-rtgs-gateway rtgs-gateway
FROM build AS build-notifications
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-notifications notifications
FROM build AS build-audit
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-audit audit
FROM build AS build-sandbox
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-sandbox sandbox
FROM build AS build-schema-registry
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-schema-registry schema-registry
FROM build AS build-provision
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-provision paystream-provision
FROM build AS build-cli
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target,sharing=locked \
    build-bin paystream-cli paystream

# ---------------------------------------------------------------- runtime
# What every binary needs at run time: OpenSSL (librdkafka's TLS), CA
# certificates, curl for container healthchecks, and /var/lib/paystream owned
# by the service user (a volume mounted there, e.g. audit's checkpoints, inherits
# that owner). No Paystream binary here.
FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libssl3 zlib1g curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin paystream \
 && mkdir -p /var/lib/paystream && chown 10001:10001 /var/lib/paystream
LABEL org.opencontainers.image.source="https://github.com/paystream/paystream" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.vendor="Paystream"
WORKDIR /
USER 10001:10001

# ---------------------------------------------------------------- final targets
FROM runtime AS gateway
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-gateway" org.opencontainers.image.version="${VERSION}"
COPY --from=build-gateway /out/gateway /usr/local/bin/gateway
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["serve"]

FROM runtime AS validation
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-validation" org.opencontainers.image.version="${VERSION}"
COPY --from=build-validation /out/validation /usr/local/bin/validation
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/validation"]

FROM runtime AS cbs-debit
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-cbs-debit" org.opencontainers.image.version="${VERSION}"
COPY --from=build-cbs-debit /out/cbs-debit /usr/local/bin/cbs-debit
EXPOSE 8083
ENTRYPOINT ["/usr/local/bin/cbs-debit"]
CMD ["serve"]

FROM runtime AS rtgs-gateway
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-rtgs-gateway" org.opencontainers.image.version="${VERSION}"
COPY --from=build-rtgs-gateway /out/rtgs-gateway /usr/local/bin/rtgs-gateway
EXPOSE 8084
ENTRYPOINT ["/usr/local/bin/rtgs-gateway"]
CMD ["serve"]

FROM runtime AS notifications
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-notifications" org.opencontainers.image.version="${VERSION}"
COPY --from=build-notifications /out/notifications /usr/local/bin/notifications
EXPOSE 8086
ENTRYPOINT ["/usr/local/bin/notifications"]
CMD ["serve"]

FROM runtime AS audit
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-audit" org.opencontainers.image.version="${VERSION}"
COPY --from=build-audit /out/audit /usr/local/bin/audit
EXPOSE 8085
ENTRYPOINT ["/usr/local/bin/audit"]
CMD ["serve"]

FROM runtime AS sandbox
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-sandbox" org.opencontainers.image.version="${VERSION}"
COPY --from=build-sandbox /out/sandbox /usr/local/bin/sandbox
EXPOSE 8090
ENTRYPOINT ["/usr/local/bin/sandbox"]

FROM runtime AS schema-registry
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-schema-registry" org.opencontainers.image.version="${VERSION}"
COPY --from=build-schema-registry /out/schema-registry /usr/local/bin/schema-registry
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/schema-registry"]

FROM runtime AS provision
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-provision" org.opencontainers.image.version="${VERSION}"
COPY --from=build-provision /out/paystream-provision /usr/local/bin/paystream-provision
ENTRYPOINT ["/usr/local/bin/paystream-provision"]
CMD ["all"]

FROM runtime AS cli
ARG VERSION=dev
LABEL org.opencontainers.image.title="paystream-cli" org.opencontainers.image.version="${VERSION}"
COPY --from=build-cli /out/paystream /usr/local/bin/paystream
ENTRYPOINT ["/usr/local/bin/paystream"]
