# syntax=docker/dockerfile:1.7
# One Dockerfile for every orderflow service. `--build-arg SERVICE=<dir under services/>` picks the
# service: each image holds one service's code plus the shared package, so it stays small and its
# default command is that service. The same image runs the migration Job (`node dist/migrate.js`)
# and, later, the dead-letter CLI (`node /app/shared/dist/cli/dlq.js`).
#
#   docker build --build-arg SERVICE=user-service -t orderflow/user-service .
#   docker build --build-arg SERVICE=user-service --target dev -t orderflow/user-service:dev .
#
# npm behind a TLS-intercepting proxy: pass the CA as a build secret, never as a layer:
#   --secret id=npm_ca,src=/etc/ssl/certs/ca-certificates.crt
ARG NODE_IMAGE=node:26-trixie-slim

# ---- manifests: only the package.json files and the lockfile, so `npm ci` stays cached until they change
FROM ${NODE_IMAGE} AS manifests
WORKDIR /src
COPY . .
RUN mkdir /out \
 && find . -name package.json -not -path '*/node_modules/*' -not -path './test/*' -exec cp --parents {} /out \; \
 && cp package-lock.json /out/

# ---- deps: every dependency of the workspace, dev ones included (the build needs tsc)
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY --from=manifests /out/ ./
RUN --mount=type=secret,id=npm_ca,required=false \
    --mount=type=cache,target=/root/.npm \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi \
 && npm ci --no-audit --no-fund --ignore-scripts

# ---- build: compile shared and the selected service, then drop dev dependencies
FROM deps AS build
ARG SERVICE
RUN test -n "${SERVICE}" || { echo "build with --build-arg SERVICE=<user-service|order-service|…>" >&2; exit 1; }
COPY tsconfig.base.json ./
COPY scripts/patches/ scripts/patches/
COPY shared/ shared/
COPY services/ services/
# npm ci ran with --ignore-scripts, so apply the dependency patches (the root postinstall) here.
RUN node scripts/patches/apply.mjs \
 && npx tsc -p shared \
 && npx tsc -p "services/${SERVICE}" \
 && npm prune --omit=dev --no-audit --no-fund --ignore-scripts \
 && find node_modules/@orderflow -mindepth 1 -maxdepth 1 -not -name shared -exec rm -rf {} + \
 && find node_modules -mindepth 1 -type d -empty -delete \
 && find shared/dist "services/${SERVICE}/dist" -name '*.map' -delete \
 && mkdir -p /out/shared "/out/services/${SERVICE}" \
 && cp -a package.json node_modules /out/ \
 && cp -a shared/package.json shared/dist /out/shared/ \
 && for f in package.json dist drizzle public; do \
      if [ -e "services/${SERVICE}/$f" ]; then cp -a "services/${SERVICE}/$f" "/out/services/${SERVICE}/"; fi; \
    done
# /out is exactly what runs: package.json files, production node_modules, shared/dist, and the
# service's dist, drizzle (migrations) and public (static assets, where a service has them).

# ---- dev: sources plus all dependencies; skaffold syncs src/ and tsx reloads on change
FROM deps AS dev
ARG SERVICE
RUN test -n "${SERVICE}"
COPY --chown=node:node tsconfig.base.json ./
COPY --chown=node:node scripts/patches/ scripts/patches/
COPY --chown=node:node shared/ shared/
COPY --chown=node:node services/ services/
# dist is built too: the migration Job runs `node dist/migrate.js` from the dev image as well.
RUN node scripts/patches/apply.mjs && npx tsc -p shared && npx tsc -p "services/${SERVICE}" && chown -R node:node shared services
ENV NODE_ENV=development
WORKDIR /app/services/${SERVICE}
USER node
# tsc keeps shared/dist current when shared/src is synced; tsx restarts the service on any change.
CMD ["sh", "-c", "/app/node_modules/.bin/tsc -w -p /app/shared --preserveWatchOutput >/tmp/shared-tsc.log 2>&1 & exec /app/node_modules/.bin/tsx watch --clear-screen=false src/main.ts"]

# ---- runtime: only what runs, owned by root so the non-root user cannot change it
FROM ${NODE_IMAGE} AS runtime
ARG SERVICE
ENV NODE_ENV=production
# A 4 MB young generation: peak RSS under load ~150 MB instead of ~175 (see SERVICE_NODE_OPTIONS);
# the services set the old generation's growing factor themselves (HEAP_GROWING_PERCENT), ~120 MB.
ENV NODE_OPTIONS=--max-semi-space-size=4
WORKDIR /app
COPY --from=build /out/ ./
WORKDIR /app/services/${SERVICE}
LABEL org.opencontainers.image.source="orderflow" org.orderflow.service="${SERVICE}"
USER node
EXPOSE 3000
CMD ["node", "dist/main.js"]
