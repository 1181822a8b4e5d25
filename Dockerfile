# scorejob's production image: the CLI, its migrations and the shipped model; no compiler, no test tools,
# no embedded PostgreSQL. Build: docker build -t scorejob:0.1.0 .   Run: docker run --rm -e DATABASE_URL=… scorejob:0.1.0 run
#
# Stage 1 compiles TypeScript with the dev dependencies; stage 2 installs the production dependencies
# only (`npm ci --omit=dev`) and copies the compiled dist/.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would build before the sources are here, and @tensorflow/tfjs-node's
# install script downloads libtensorflow (the job then falls back to the wasm backend; see README "Backends").
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npx tsc -p tsconfig.build.json

FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# The optional native backend (@tensorflow/tfjs-node) is left out by default: without its libtensorflow
# (downloaded by its install script) it is ~200 MB of JavaScript the job cannot use, and the job scores
# on the wasm backend. With network access at build time, --build-arg TFJS_NODE=1 installs it, binary included.
ARG TFJS_NODE=0
RUN if [ "$TFJS_NODE" = 1 ]; then npm ci --omit=dev --no-audit --no-fund --ignore-scripts && npm rebuild @tensorflow/tfjs-node; \
    else npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund; fi \
 && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY sql ./sql
COPY models ./models
# The image's own non-root user (uid 1000); Kubernetes manifests also set runAsNonRoot.
USER node
# Exec form: node is PID 1 and receives SIGTERM itself; scorejob handles it (the chunk in flight
# finishes, the run is marked interrupted and resumable, exit 143).
ENTRYPOINT ["node", "/app/bin/scorejob"]
CMD ["--help"]
