# The lclstream services and command line, one image for every service of
# mesh/compose.yaml (the command picks the service).
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY . .
RUN npm ci && npm run build

FROM node:20-bookworm-slim
WORKDIR /opt/lclstream
COPY package.json package-lock.json ./
# Runtime dependencies only; better-sqlite3 still needs its native build step.
RUN npm ci --omit=dev --ignore-scripts && npm rebuild better-sqlite3
COPY --from=build /src/dist ./dist
COPY bin ./bin
COPY mesh ./mesh
RUN ln -s /opt/lclstream/bin/lclstream.js /usr/local/bin/lclstream
ENTRYPOINT ["lclstream"]
