# The lclstream services and command line, one image for every service of
# mesh/compose.yaml (the command picks the service).
FROM node:20-bookworm-slim AS build
# A compiler for the native module (native/), which npm ci builds against this Node's headers.
RUN apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# (The directory exists even when the module could not be built: the image then uses Node's HTTP/2.)
RUN npm ci && npm run build && mkdir -p native/build/Release

FROM node:20-bookworm-slim
WORKDIR /opt/lclstream
COPY package.json package-lock.json ./
# Runtime dependencies only; better-sqlite3 still needs its native build step.
RUN npm ci --omit=dev --ignore-scripts && npm rebuild better-sqlite3
COPY --from=build /src/dist ./dist
COPY --from=build /src/native/build/Release ./native/build/Release
COPY bin ./bin
COPY mesh ./mesh
RUN ln -s /opt/lclstream/bin/lclstream.js /usr/local/bin/lclstream
ENTRYPOINT ["lclstream"]
