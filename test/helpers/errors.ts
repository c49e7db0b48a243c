/** How a call failed, for assertions: throws when it succeeded instead. */
import { ConnectError, type Code } from "@connectrpc/connect";
import { badRequest, errorInfo } from "../../services/common/errors.js";

export interface Failure {
  code: Code;
  /** The ErrorInfo reason, when the error has one. */
  reason: string | undefined;
  /** The fields of its BadRequest violations. */
  fields: string[];
  message: string;
}

export async function failure(call: Promise<unknown>): Promise<Failure> {
  try {
    await call;
  } catch (error) {
    const e = ConnectError.from(error);
    return { code: e.code, reason: errorInfo(e)?.reason, fields: badRequest(e)?.fieldViolations.map((v) => v.field) ?? [], message: e.rawMessage };
  }
  throw new Error("the call succeeded");
}

/** Just the code and reason, for exact comparisons. */
export async function codeAndReason(call: Promise<unknown>): Promise<Pick<Failure, "code" | "reason">> {
  const { code, reason } = await failure(call);
  return { code, reason };
}
