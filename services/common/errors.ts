/**
 * Errors with canonical gRPC codes and google.rpc details (AIP-193): every
 * error carries an ErrorInfo with a stable UPPER_SNAKE reason and a domain
 * `lclstream.<area>`; bad input also carries BadRequest field violations.
 */
import { Code, ConnectError } from "@connectrpc/connect";
import type { DescMessage, MessageInitShape } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { BadRequestSchema, BadRequest_FieldViolationSchema, ErrorInfoSchema, type ErrorInfo, type BadRequest } from "../../gen/google/rpc/error_details_pb.js";

type OutgoingDetail = { desc: DescMessage; value: MessageInitShape<DescMessage> };

/** One bad field of a request. */
export interface FieldViolation {
  /** Path to the field, for example `spec.resources.node_count`. */
  field: string;
  /** What is wrong and what to do about it. */
  description: string;
}

/** Options of {@link rpcError}. */
export interface RpcErrorOptions {
  /** Dynamic values of the error, kept out of the reason. */
  metadata?: Record<string, string>;
  /** Bad fields, for INVALID_ARGUMENT. */
  violations?: FieldViolation[];
  /** The underlying error, kept for the log and never sent. */
  cause?: unknown;
}

/**
 * Longest message, metadata value and violation description sent. They travel
 * in HTTP/2 trailers, which peers cap at a few kB: an error quoting a 70 kB
 * name whole would be a protocol error instead of the refusal.
 */
const maxMessageChars = 1024;
const maxValueChars = 256;

/** `text`, cut to `max` characters with a note of how long it was. */
function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

/**
 * Makes a ConnectError with an ErrorInfo (and BadRequest when there are
 * violations). `message` says what was wrong and what to do. Long dynamic
 * values (a client's 70 kB name quoted back) are clipped.
 */
export function rpcError(code: Code, domain: string, reason: string, message: string, options: RpcErrorOptions = {}): ConnectError {
  const details: OutgoingDetail[] = [
    {
      desc: ErrorInfoSchema,
      value: { reason, domain, metadata: Object.fromEntries(Object.entries(options.metadata ?? {}).map(([k, v]) => [k, clip(v, maxValueChars)])) },
    },
  ];
  if (options.violations?.length) {
    details.push({
      desc: BadRequestSchema,
      value: {
        fieldViolations: options.violations.map((v) =>
          create(BadRequest_FieldViolationSchema, { field: clip(v.field, maxValueChars), description: clip(v.description, maxValueChars) }),
        ),
      },
    });
  }
  return new ConnectError(clip(message, maxMessageChars), code, undefined, details, options.cause);
}

/** An INVALID_ARGUMENT error listing the bad fields. */
export function invalidArgument(domain: string, violations: FieldViolation[], reason = "INVALID_ARGUMENT"): ConnectError {
  const message = violations.map((v) => `${v.field}: ${clip(v.description, maxValueChars)}`).join("; ");
  return rpcError(Code.InvalidArgument, domain, reason, message, { violations });
}

/** The ErrorInfo of an error, if it has one. */
export function errorInfo(error: ConnectError): ErrorInfo | undefined {
  return error.findDetails(ErrorInfoSchema)[0];
}

/** The BadRequest of an error, if it has one. */
export function badRequest(error: ConnectError): BadRequest | undefined {
  return error.findDetails(BadRequestSchema)[0];
}

/** The domain of errors raised by the shared runtime. */
export const runtimeDomain = "lclstream.runtime";
