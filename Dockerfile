# syntax=docker/dockerfile:1
# Kontinuum's image: kontinuum-operator, kontinuum-worker and kontinuum as
# static (musl) binaries in /usr/local/bin, nothing else but /etc/passwd,
# /etc/group, CA certificates, /tmp, /data and a home, run as uid 65532.
#
#   docker build -t kontinuum.dev/kontinuum:0.1.0 .
#
# scripts/build-image builds the same layout without a container daemon; it
# is the reference (its archive is what the tests check). docs/install.md.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
# musl-gcc: ring and mimalloc compile C for the musl target.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
ENV CC_x86_64_unknown_linux_musl=musl-gcc \
    CARGO_PROFILE_RELEASE_DEBUG=0 \
    CARGO_PROFILE_RELEASE_STRIP=true
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --target x86_64-unknown-linux-musl \
      -p kontinuum-operator -p kontinuum-worker -p kontinuum-cli \
      --bin kontinuum-operator --bin kontinuum-worker --bin kontinuum \
 && mkdir -p /rootfs/usr/local/bin \
 && for b in kontinuum-operator kontinuum-worker kontinuum; do \
      cp "target/x86_64-unknown-linux-musl/release/$b" /rootfs/usr/local/bin/; \
    done
# The rest of the tree, as image/src/rootfs.rs declares it.
RUN set -eu; r=/rootfs; \
    mkdir -p "$r/etc/ssl/certs" "$r/tmp" "$r/data" "$r/home/kontinuum"; \
    printf 'root:x:0:0:root:/root:/sbin/nologin\nkontinuum:x:65532:65532:kontinuum:/home/kontinuum:/sbin/nologin\n' >"$r/etc/passwd"; \
    printf 'root:x:0:\nkontinuum:x:65532:\n' >"$r/etc/group"; \
    cp /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/"; \
    chmod 0644 "$r/etc/passwd" "$r/etc/group" "$r/etc/ssl/certs/ca-certificates.crt"; \
    chmod 0755 "$r/usr/local/bin/"*; \
    chmod 1777 "$r/tmp"; \
    chmod 0700 "$r/data" "$r/home/kontinuum"

FROM scratch
COPY --from=build /rootfs/ /
# COPY resets owners to root: the two directories of the user get theirs.
COPY --from=build --chown=65532:65532 /rootfs/data /data
COPY --from=build --chown=65532:65532 /rootfs/home/kontinuum /home/kontinuum
ENV PATH=/usr/local/bin
USER 65532:65532
WORKDIR /
CMD ["/usr/local/bin/kontinuum-operator"]
LABEL org.opencontainers.image.title="kontinuum" \
      org.opencontainers.image.description="Kontinuum operator, worker and CLI" \
      org.opencontainers.image.licenses="Apache-2.0"
