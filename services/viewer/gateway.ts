/**
 * `lclstream view`: the live viewer on loopback. Serves the viewer page and
 * answers its calls (Connect or gRPC-Web from the browser) by making them to
 * the mesh with the user's certificate, so no certificate has to be installed
 * in a browser on the user's own machine. It binds 127.0.0.1 only, and every
 * call must carry the random token printed in the viewer's URL.
 *
 * The viewer only reads and cancels: the user's requests (list, get, watch,
 * cancel) and Subscribe, for the latest-only group a request offers (every
 * shard of a sharded request, merged here).
 */
import { randomBytes, timingSafeEqual } from "node:crypto";
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Code, ConnectError, createClient, createConnectRouter, type Client, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { universalRequestFromNodeRequest, universalResponseToNodeResponse } from "@connectrpc/connect-node";
import { create } from "@bufbuild/protobuf";
import { BufferService, type SubscribeRequest, type SubscribeResponse, SubscribeResponseSchema } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import type { StreamTotals } from "../../gen/lclstream/data/v1/data_pb.js";
import { DataRequestService } from "../../gen/lclstream/request/v1/request_pb.js";
import { AsyncQueue } from "../common/async-queue.js";
import { createMeshTransport } from "../common/client.js";
import { mergeTotals, shardCallHeaders, shardsOf } from "../common/shards.js";
import type { CertMaterial } from "../common/pki.js";
import { peerGone } from "../common/node-handler.js";
import { createStaticHandler } from "../common/static-files.js";

/** Options of {@link startViewerGateway}. */
export interface ViewerGatewayOptions {
  /** The data request service, `https://host:port`. */
  requestUrl: string;
  /** The user's certificate. */
  tls: CertMaterial;
  /** The built page (dist/viewer). */
  staticDir: string;
  port?: number;
  /** psana geometry files (their names and texts) the page draws frames of their shapes with. */
  geometries?: { name: string; text: string }[];
}

export async function startViewerGateway(o: ViewerGatewayOptions) {
  const token = randomBytes(24).toString("base64url");
  const requests = createClient(DataRequestService, createMeshTransport({ baseUrl: o.requestUrl, tls: o.tls }));
  const buffers = new Map<string, Client<typeof BufferService>>();

  const bufferAt = (endpoint: string) => {
    let buffer = buffers.get(endpoint);
    if (!buffer) buffers.set(endpoint, (buffer = createClient(BufferService, createMeshTransport({ baseUrl: endpoint, tls: o.tls }))));
    return buffer;
  };

  /** The request whose stream (shard 0's, for a sharded one) is `stream`, of the user's. */
  async function requestOf(stream: string, signal: AbortSignal) {
    const { dataRequests } = await requests.listDataRequests({ pageSize: 1000 }, { signal });
    const r = dataRequests.find((x) => x.stream === stream);
    if (!r) throw new ConnectError(`none of your requests streams ${stream}`, Code.NotFound);
    return r;
  }

  /**
   * Every shard of the request as one Subscribe stream: the first shard's
   * `started`, then batches and heartbeats as they come, and one end of
   * stream, with the shards' totals, once every shard has ended.
   */
  async function* subscribeAll(req: SubscribeRequest, signal: AbortSignal): AsyncGenerator<SubscribeResponse> {
    const r = await requestOf(req.stream, signal);
    const shards = shardsOf(r);
    if (shards.length === 1) {
      yield* bufferAt(shards[0]!.bufferEndpoint).subscribe(req, { signal, ...shardCallHeaders(shards[0]!) });
      return;
    }
    const merged = new AsyncQueue<SubscribeResponse>();
    const ended: StreamTotals[] = [];
    const stop = new AbortController();
    const both = AbortSignal.any([signal, stop.signal]);
    let started = false;
    for (const shard of shards) {
      void (async () => {
        for await (const m of bufferAt(shard.bufferEndpoint).subscribe({ ...req, stream: shard.stream }, { signal: both, ...shardCallHeaders(shard) })) {
          if (m.kind.case === "started") {
            if (!started) merged.push(m);
            started = true;
          } else if (m.kind.case === "endOfStream") {
            ended.push(m.kind.value);
            if (ended.length === shards.length) {
              merged.push(create(SubscribeResponseSchema, { kind: { case: "endOfStream", value: mergeTotals(ended, r.parallelism || 1) } }));
              merged.close();
            }
          } else merged.push(m);
        }
      })().catch((error: unknown) => merged.fail(error));
    }
    try {
      yield* merged.drain(signal);
    } finally {
      stop.abort();
    }
  }

  const expected = Buffer.from(`Bearer ${token}`);
  const requireToken: Interceptor = (next) => async (req) => {
    const given = Buffer.from(req.header.get("authorization") ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new ConnectError("open the viewer with the URL `lclstream view` printed (it carries the access token)", Code.Unauthenticated);
    }
    return next(req);
  };
  const routes = (router: ConnectRouter) => {
    router.service(DataRequestService, {
      listDataRequests: (req, ctx) => requests.listDataRequests(req, { signal: ctx.signal }),
      getDataRequest: (req, ctx) => requests.getDataRequest(req, { signal: ctx.signal }),
      cancelDataRequest: (req, ctx) => requests.cancelDataRequest(req, { signal: ctx.signal }),
      watchDataRequest: (req, ctx) => requests.watchDataRequest(req, { signal: ctx.signal }),
    });
    router.service(BufferService, {
      subscribe: (req, ctx) => subscribeAll(req, ctx.signal),
    });
  };
  const router = createConnectRouter({ interceptors: [requireToken], acceptCompression: [] });
  routes(router);
  const calls = new Map(router.handlers.map((h) => [h.requestPath, h]));
  // connect-node's adapter, except that a call whose browser tab closed is no failure (it printed a stack for each).
  const api = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const call = calls.get(req.url?.split("?", 1)[0] ?? "");
    if (!call) return void res.writeHead(404).end();
    call(universalRequestFromNodeRequest(req, res, undefined, undefined))
      .then((answer) => universalResponseToNodeResponse(answer, res))
      .catch((reason: unknown) => {
        const error = ConnectError.from(reason);
        if (peerGone(req, res) || error.code === Code.Aborted || error.code === Code.Canceled) return;
        console.error(`viewer: ${call.method.name} failed: ${error.message}`);
      });
  };
  const page = createStaticHandler(o.staticDir);
  const geometries = JSON.stringify(o.geometries ?? []);
  const server = http.createServer((req, res) => {
    if (req.method === "GET" && req.url === "/geometry.json") return void res.writeHead(200, { "content-type": "application/json" }).end(geometries);
    if (!page(req, res)) api(req, res);
  });
  await new Promise<void>((done) => server.listen(o.port ?? 0, "127.0.0.1", done));
  const { port } = server.address() as AddressInfo;
  return {
    /** Open this: the page, with the access token in the fragment (never sent to a server). */
    url: `http://127.0.0.1:${port}/#${token}`,
    close: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}
