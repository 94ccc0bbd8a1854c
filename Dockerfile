# One image for every slotflow process: the Temporal worker, the node agent and the CLI.
# Node 24 runs the TypeScript sources directly (type stripping), so there is no build step.
#   docker build -t slotflow:local .
#   docker run --rm slotflow:local --help
FROM node:24-bookworm-slim

# e2fsprogs and squashfs-tools: the image builder writes slot images with `mkfs.ext4 -d` and
# `mksquashfs`; skopeo and umoci pull and unpack OCI images into slot images. ca-certificates: TLS to NATS and Temporal when they are configured for it.
# openssl: `stack nats-auth` makes the secured NATS's CA and server certificate with it.
RUN apt-get update \
  && apt-get install -y --no-install-recommends ca-certificates e2fsprogs openssl squashfs-tools skopeo umoci \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production \
  NODE_OPTIONS=--disable-warning=ExperimentalWarning \
  SLOTFLOW_HOME=/var/lib/slotflow

# Dependencies first, so a source change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --loglevel=error && npm cache clean --force

# Sources stay owned by root: the runtime user can read them but not change them.
COPY . .

# State directories are created here, owned by the runtime user, so that named volumes mounted
# on them start out writable by it (Docker copies ownership into an empty named volume).
RUN ln -s /app/bin/slotflow /usr/local/bin/slotflow \
  && mkdir -p /var/lib/slotflow /var/lib/slotflow-agent /var/lib/slotflow-nats /var/lib/slotflow-nats-auth \
    /var/lib/slotflow-nats-creds/worker /var/lib/slotflow-nats-creds/cli \
    /var/lib/slotflow-nats-creds/node-1 /var/lib/slotflow-nats-creds/node-2 /var/lib/slotflow-nats-creds/node-3 \
  && chown -R node:node /var/lib/slotflow /var/lib/slotflow-agent /var/lib/slotflow-nats \
    /var/lib/slotflow-nats-auth /var/lib/slotflow-nats-creds

# The node image's unprivileged user. A real node agent runs as root under systemd because it
# writes boot slots; in containers the `file` slot driver only needs its data directory.
USER node

ENTRYPOINT ["node", "/app/cli/main.ts"]
CMD ["--help"]
