# syntax=docker/dockerfile:1
# Canopy's image: built in one stage with the dev dependencies, run from another with the
# production dependencies only. compose.yaml runs it (docs/deploy.md); test/deploy.test.ts
# replays this file's COPY and npm steps outside a container.

# Node 22 LTS; Canopy runs on 20.19+ as well (package.json's engines; the README says what is tested).
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build-if-needed.mjs scripts/
COPY server server/
COPY src src/
COPY plugins plugins/
RUN npm run build

FROM ${NODE_IMAGE}
# HOST only: the metrics listener (METRICS_PORT, off unless set) binds METRICS_HOST, 127.0.0.1
# unless set, so that metrics are never served where the app is; docs/deploy.md says how to scrape.
ENV NODE_ENV=production HOST=0.0.0.0 PORT=8800
WORKDIR /app
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund
COPY --from=build /app/dist dist/
# What the server reads at run time, and the sources with the build script: dist/ carries a
# stamp of their hash, so `npm start` and `npm run db:migrate` find it built and run at once.
COPY migrations migrations/
COPY public public/
COPY client/src client/src/
COPY scripts/build-if-needed.mjs scripts/
COPY tsconfig.json tsconfig.build.json ./
COPY server server/
COPY src src/
COPY plugins plugins/
# The embedded database's place, for a single container without DATABASE_URL.
RUN mkdir data && chown node:node data
USER node
EXPOSE 8800
# /healthz: the process serves. Readiness (database and topic bus) is /readyz.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + process.env.PORT + '/healthz', { signal: AbortSignal.timeout(2500) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "dist/server/server.js"]
