# phiserve as a container image (docs/DEPLOY.md "Container image").
#
#   docker build -t phiserve .
#   docker run -p 8080:8080 -v phiserve-models:/models -e PHISERVE_API_KEYS=… phiserve
#   docker run … phiserve serve --host 0.0.0.0 --model /models/Phi-3.5-mini-instruct-Q4_K_M.gguf --db postgres://… --redis redis://…
#
# Two stages: `build` installs every dependency (TypeScript included; `npm install` runs the prepare
# script, which compiles src/ into dist/) and then drops the devDependencies; the runtime stage gets
# only package.json, bin/, dist/ and the production node_modules, and runs as the unprivileged `node`
# user. Models live on the /models volume (the download cache), the default SQLite usage database on /data.
# scripts/docker-build-steps.sh runs these steps without Docker (CI has no daemon): keep to the
# instructions it knows (FROM, ARG, ENV, WORKDIR, COPY, RUN, USER, VOLUME, EXPOSE, STOPSIGNAL,
# HEALTHCHECK, ENTRYPOINT, CMD, LABEL) and to paths under WORKDIR in the build stage.
ARG NODE_VERSION=22

FROM node:${NODE_VERSION}-bookworm-slim AS build
# A compiler for native modules whose prebuilt binary cannot be fetched (better-sqlite3 falls back to node-gyp).
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# onnxruntime-node: CPU binaries only (its install script would fetch CUDA libraries from NuGet).
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
COPY scripts/build.js scripts/build.js
COPY bin/ bin/
COPY src/ src/
# The playground and dashboard pages (web/ → dist/web, built by scripts/build.js when vite is installed).
COPY web/ web/
RUN npm install --no-audit --no-fund
RUN npm prune --omit=dev --no-audit --no-fund

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
ENV NODE_ENV=production \
    ONNXRUNTIME_NODE_INSTALL=skip \
    PHISERVE_CACHE_DIR=/models \
    PHISERVE_DATA_DIR=/data
RUN mkdir -p /models /data && chown node:node /models /data
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/bin/ bin/
COPY --from=build /app/dist/ dist/
COPY --from=build /app/node_modules/ node_modules/
USER node
VOLUME ["/models", "/data"]
EXPOSE 8080
# SIGTERM drains (503 to new requests, /health 503 "draining") for up to --drain-timeout seconds, then exits 0.
STOPSIGNAL SIGTERM
# /health: 503 while the model loads (the first start may download it: hence the long start period), 200 when ready.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/health').then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "bin/phiserve.cjs"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
