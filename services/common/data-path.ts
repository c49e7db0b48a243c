/**
 * The calls that carry event batches, and the acknowledgements beside them:
 * served (direct-grpc.ts) and made (direct-transport.ts) over gRPC framed by
 * hand, measured faster than connect at the batch sizes detectors produce.
 * One list, for the buffer's server and every client.
 */
import { BufferService } from "../../gen/lclstream/buffer/v1/buffer_pb.js";
import { procedureOf } from "./interceptors.js";

/** The data path's methods. */
export const dataPathMethods = [BufferService.method.publish, BufferService.method.subscribe, BufferService.method.ack];

/** Their procedures, `/lclstream.buffer.v1.BufferService/Publish` and so on. */
export const dataPathProcedures: ReadonlySet<string> = new Set(dataPathMethods.map(procedureOf));

/** The consumer group a stream has when its definition names none. */
export const defaultConsumerGroup = "default";
