/**
 * @grpc/grpc-js clients for the generated services: the reference gRPC
 * implementation, used to prove wire compatibility and, where it measures
 * faster, on the data path. Messages are encoded with the generated
 * protobuf-es schemas, so both stacks share one definition.
 */
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary, type DescMessage, type DescService } from "@bufbuild/protobuf";
import type { CertMaterial } from "./pki.js";

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
