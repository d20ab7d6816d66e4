# syntax=docker/dockerfile:1
# mirror-cache service image. Build from the repository root:
#   docker build -t mesh-mirror/mirror-cache:0.1.0 .
# Two stages: `deps` installs the production dependencies (tsx runs the TypeScript sources, so it is
# a production dependency and no compile step is needed); `runtime` copies them with the service
# sources into a clean image that runs as the unprivileged `node` user (uid 1000).

FROM node:20-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

FROM node:20-bookworm-slim AS runtime
# GLIBC_TUNABLES: glibc's malloc asks for transparent huge pages, so record bodies sit on 2 MiB
# pages; on 4 KiB pages, where a body read some seconds after it was written is slow to read, the
# 64 KiB mirror hit took a third more CPU per request in the bench (service/huge-pages.ts). Needs
# THP mode madvise or always on the node; set it to "" to turn it off.
ENV NODE_ENV=production \
    PORT=8080 \
    HOST=0.0.0.0 \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1
WORKDIR /app
# Owned by root and not writable by the service user: the code is read-only at run time.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json tsconfig.json ./
COPY service ./service
# Numeric uid/gid so Kubernetes can check runAsNonRoot without resolving names.
USER 1000:1000
EXPOSE 8080
# Kubernetes ignores HEALTHCHECK (the Deployment has its own probes); docker compose uses it
# (`docker compose up --wait`, depends_on: service_healthy). No curl in the slim image: use node.
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# tsx compiles on the fly and caches under os.tmpdir(): with a read-only root filesystem mount an
# emptyDir at /tmp (the Kubernetes manifests do).
CMD ["node", "--import", "tsx", "service/server.ts"]
