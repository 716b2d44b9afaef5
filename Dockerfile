# The rpc-crypto image: the static (musl) binary on `scratch`, and nothing else: no shell, no
# libc, no CA bundle (the exchanges' wss:// and https:// use Mozilla's roots compiled into the
# binary, webpki-roots), no /etc/passwd (the user is numeric).
#
# The binary is built outside this file, by scripts/image, which then builds this image from a
# context holding only that binary (named `rpc-crypto`):
#
#     scripts/image                          # rpc-crypto:latest; IMAGE=name:tag for another
#
# Building it with no base image to pull keeps the build working offline and the image at the
# binary's size. By hand, the same steps are:
#
#     cargo build --release --target x86_64-unknown-linux-musl --bin rpc-crypto
#     mkdir -p ctx && objcopy --strip-debug target/x86_64-unknown-linux-musl/release/rpc-crypto ctx/rpc-crypto
#     podman build --format docker -f Dockerfile --build-arg VERSION=0.1.0 \
#         --build-arg CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ) -t rpc-crypto ctx
#
# (`--format docker`: podman's default OCI format drops HEALTHCHECK.)
#
# Run it: docs/OPERATIONS.md, "Container".
FROM scratch

# From scripts/image: the version the binary reports (Cargo.toml's), the build time (RFC 3339)
# and the git commit.
ARG VERSION
ARG CREATED
ARG REVISION

LABEL org.opencontainers.image.title="rpc-crypto" \
      org.opencontainers.image.description="Real-time broker for crypto-currency market data and trading, speaking the Centrifuge v2 client protocol" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.revision="${REVISION}"

# Owned by root and not writable: the server's user cannot change its own binary.
COPY rpc-crypto /rpc-crypto

# nobody:nogroup by number (there is no /etc/passwd to name them). The broker writes no files;
# a mounted config only has to be readable by this user.
USER 65534:65534

# Inside the container the listener is on every interface; publish it with -p (HOST:8000).
ENV RPC_CRYPTO_LISTEN=0.0.0.0:8000
EXPOSE 8000

# `docker stop` / `podman stop` send SIGTERM: every client gets disconnect 3001 once its queue is
# written (at most `shutdown_timeout`, 10 s by default, which is the runtimes' default grace
# period too: a longer shutdown_timeout wants `stop --time`), then the process exits 0.
STOPSIGNAL SIGTERM

# The binary asks its own /health (127.0.0.1:8000 from RPC_CRYPTO_LISTEN): 200 is healthy, 503
# (a core actor or an adapter failed) or no answer is not. Its own time-out is below the
# runtime's, so the reason reaches `podman inspect`'s health log instead of a kill.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/rpc-crypto", "health", "--timeout", "3s"]

# The embedded default configuration plus RPC_CRYPTO_* variables (-e). For a config file,
# mount it and name it: -v ./rpc-crypto.toml:/etc/rpc-crypto/rpc-crypto.toml:ro
# IMAGE serve --config /etc/rpc-crypto/rpc-crypto.toml
ENTRYPOINT ["/rpc-crypto"]
CMD ["serve"]
