/**
 * @grpc/grpc-js, the reference gRPC implementation, for tests and
 * benchmarks that prove wire compatibility: clients of the generated
 * services (messages encoded with the generated protobuf-es schemas, so both
 * stacks share one definition), promisified calls and stream collection.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import type { CertMaterial } from "../../services/common/pki.js";

/** A grpc-js service definition for a generated service. */
export function grpcJsServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const definition: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
      originalName: method.name,
    };
  }
  return definition;
}

function serializer(desc: DescMessage) {
  return (value: object) => Buffer.from(toBinary(desc, create(desc, value as Record<string, unknown>)));
}

function deserializer(desc: DescMessage) {
  return (bytes: Buffer) => fromBinary(desc, bytes);
}

/** grpc-js channel credentials for mutual TLS. */
export function grpcJsCredentials(tls: CertMaterial | Pick<CertMaterial, "caPem">): grpc.ChannelCredentials {
  return "certPem" in tls
    ? grpc.credentials.createSsl(Buffer.from(tls.caPem), Buffer.from(tls.keyPem), Buffer.from(tls.certPem))
    : grpc.credentials.createSsl(Buffer.from(tls.caPem));
}

/** Channel options matching the servers' data-path settings. */
export const grpcJsChannelOptions: grpc.ChannelOptions = {
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc.max_send_message_length": 64 * 1024 * 1024,
  "grpc-node.flow_control_window": 8 * 1024 * 1024,
};

/** A generic grpc-js client whose methods are the service's method local names. */
export function createGrpcJsClient(
  service: DescService,
  address: string,
  credentials: grpc.ChannelCredentials,
  options: grpc.ChannelOptions = {},
): grpc.Client & Record<string, (...args: unknown[]) => unknown> {
  const Client = grpc.makeGenericClientConstructor(grpcJsServiceDefinition(service), service.typeName);
  return new Client(address, credentials, { ...grpcJsChannelOptions, ...options }) as never;
}

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
