/**
 * gRPC server reflection, v1 and v1alpha (identical on the wire), so grpcurl
 * and other tools can discover the services without proto files.
 */
import { Code, type ConnectRouter } from "@connectrpc/connect";
import { createRegistry, toBinary, type DescFile, type DescService, type Registry } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { file_google_rpc_error_details } from "../../gen/google/rpc/error_details_pb.js";

type Request = v1.ServerReflectionRequest;
type Response = Omit<v1.ServerReflectionResponse, "$typeName" | "originalRequest"> & { originalRequest?: Request };

/** Answers reflection questions about a fixed set of services. */
export class ReflectionIndex {
  readonly #registry: Registry;
  readonly #files: Map<string, DescFile>;
  readonly #serviceNames: string[];

  /** `extraFiles`: files to describe beyond the services' own (types that travel inside an Any). */
  constructor(services: DescService[], extraFiles: DescFile[] = []) {
    const files = closure([...services.map((s) => s.file), ...extraFiles]);
    this.#registry = createRegistry(...files);
    this.#files = new Map(files.map((f) => [f.proto.name, f]));
    this.#serviceNames = [...new Set(services.map((s) => s.typeName))].sort();
  }

  /** Answers one request. */
  answer(request: Request): Response["messageResponse"] {
    const ask = request.messageRequest;
    switch (ask.case) {
      case "listServices":
        return {
          case: "listServicesResponse",
          value: { service: this.#serviceNames.map((name) => ({ name })) } as v1.ListServiceResponse,
        };
      case "fileByFilename": {
        const file = this.#files.get(ask.value);
        return file ? this.#answerFiles(file) : notFound(`file "${ask.value}" not found`);
      }
      case "fileContainingSymbol": {
        const file = this.#fileOfSymbol(ask.value);
        return file ? this.#answerFiles(file) : notFound(`symbol "${ask.value}" not found`);
      }
      case "fileContainingExtension": {
        const ext = this.#registry.getExtensionFor(
          this.#registry.getMessage(ask.value.containingType) ?? ({ typeName: "" } as never),
          ask.value.extensionNumber,
        );
        return ext ? this.#answerFiles(ext.file) : notFound(`extension ${ask.value.extensionNumber} of "${ask.value.containingType}" not found`);
      }
      case "allExtensionNumbersOfType": {
        const message = this.#registry.getMessage(ask.value);
        if (!message) return notFound(`type "${ask.value}" not found`);
        const numbers: number[] = [];
        for (const desc of this.#registry) {
          if (desc.kind === "extension" && desc.extendee.typeName === message.typeName) numbers.push(desc.number);
        }
        return {
          case: "allExtensionNumbersResponse",
          value: { baseTypeName: message.typeName, extensionNumber: numbers } as v1.ExtensionNumberResponse,
        };
      }
      default:
        return {
          case: "errorResponse",
          value: { errorCode: Code.InvalidArgument, errorMessage: "empty reflection request" } as v1.ErrorResponse,
        };
    }
  }

  #fileOfSymbol(symbol: string): DescFile | undefined {
    const desc = this.#registry.get(symbol);
    if (desc) return desc.file;
    // A method or field: look up its parent.
    const parent = this.#registry.get(symbol.slice(0, Math.max(0, symbol.lastIndexOf("."))));
    if (parent?.kind === "service") return parent.methods.some((m) => `${parent.typeName}.${m.name}` === symbol) ? parent.file : undefined;
    if (parent?.kind === "message") return parent.fields.some((f) => `${parent.typeName}.${f.name}` === symbol) ? parent.file : undefined;
    return undefined;
  }

  /** The file and everything it imports, the file first. */
  #answerFiles(file: DescFile): Response["messageResponse"] {
    const protos = closure([file]).map((f) => toBinary(FileDescriptorProtoSchema, f.proto));
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: protos } as v1.FileDescriptorResponse };
  }
}

function notFound(message: string): Response["messageResponse"] {
  return { case: "errorResponse", value: { errorCode: Code.NotFound, errorMessage: message } as v1.ErrorResponse };
}

/** The files and their transitive dependencies, each once, in the order met. */
function closure(files: DescFile[]): DescFile[] {
  const seen = new Map<string, DescFile>();
  const visit = (file: DescFile) => {
    if (seen.has(file.name)) return;
    seen.set(file.name, file);
    file.dependencies.forEach(visit);
  };
  files.forEach(visit);
  return [...seen.values()];
}

/** Registers reflection v1 and v1alpha for `services` (plus reflection itself). */
export function registerReflection(router: ConnectRouter, services: DescService[]): void {
  // Error details (ErrorInfo, BadRequest) travel as Any in every error: describe
  // them too, so grpcurl and other reflection clients can print them.
  const index = new ReflectionIndex([...services, v1.ServerReflection, v1alpha.ServerReflection], [file_google_rpc_error_details]);
  async function* serve(requests: AsyncIterable<Request>) {
    for await (const request of requests) {
      // A plain copy, so the same code serves v1 and v1alpha requests.
      const ask = request.messageRequest;
      const messageRequest =
        ask.case === "fileContainingExtension"
          ? { case: ask.case, value: { containingType: ask.value.containingType, extensionNumber: ask.value.extensionNumber } }
          : ask;
      const originalRequest = { host: request.host, messageRequest };
      yield { originalRequest, messageResponse: index.answer(request) };
    }
  }
  router.service(v1.ServerReflection, { serverReflectionInfo: serve });
  // v1alpha messages have the same fields and numbers; only the type names differ.
  router.service(v1alpha.ServerReflection, {
    serverReflectionInfo: serve as unknown as (requests: AsyncIterable<v1alpha.ServerReflectionRequest>) => AsyncIterable<v1alpha.ServerReflectionResponse>,
  });
}
