/** grpc-js helpers: promisified calls and stream collection. */
import type * as grpc from "@grpc/grpc-js";

type Callback = (error: grpc.ServiceError | null, response: unknown) => void;

/** Calls a grpc-js unary method and resolves with its response. */
export function unary<T>(client: grpc.Client, method: string, request: unknown, metadata?: grpc.Metadata): Promise<T> {
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method]!.bind(client);
  return new Promise((resolve, reject) => {
    const callback: Callback = (error, response) => (error ? reject(error) : resolve(response as T));
    if (metadata) fn(request, metadata, callback);
    else fn(request, callback);
  });
}

/** Reads a grpc-js readable call to its end. */
export function collect<T>(call: grpc.ClientReadableStream<unknown>): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const items: T[] = [];
    call.on("data", (item) => items.push(item as T));
    call.on("error", reject);
    call.on("end", () => resolve(items));
  });
}
