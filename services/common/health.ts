/**
 * grpc.health.v1.Health: Check and Watch over a table of serving states that
 * the server (and each service) updates.
 */
import { abortable } from "./abortable.js";
import { Code, ConnectError, type ServiceImpl } from "@connectrpc/connect";
import { type Health, HealthCheckResponse_ServingStatus as Status } from "../../gen/grpc/health/v1/health_pb.js";

export { Status as ServingStatus };

/** The serving state of the server ("") and of each service by full name. */
export class HealthStatus {
  readonly #states = new Map<string, Status>();
  readonly #listeners = new Set<() => void>();

  /** Sets a service's state ("" is the whole server) and wakes watchers. */
  set(service: string, status: Status): void {
    if (this.#states.get(service) === status) return;
    this.#states.set(service, status);
    for (const listener of this.#listeners) listener();
  }

  /** The state of a service, or undefined when it is not known. */
  get(service: string): Status | undefined {
    return this.#states.get(service);
  }

  /** Marks the server and every service NOT_SERVING (at shutdown). */
  setAllNotServing(): void {
    for (const service of [...this.#states.keys()]) this.set(service, Status.NOT_SERVING);
  }

  /** Yields the state now and on every change, until `signal` aborts. */
  async *watch(service: string, signal: AbortSignal): AsyncGenerator<Status> {
    let changed: (() => void) | undefined;
    const listener = () => changed?.();
    this.#listeners.add(listener);
    try {
      let last: Status | undefined;
      for (;;) {
        signal.throwIfAborted();
        const wake = new Promise<void>((resolve) => (changed = resolve));
        const now = this.#states.get(service) ?? Status.SERVICE_UNKNOWN;
        if (now !== last) {
          last = now;
          yield now;
        }
        await abortable(wake, signal);
      }
    } finally {
      this.#listeners.delete(listener);
    }
  }
}

/** The Health service over a status table. */
export function createHealthService(status: HealthStatus): ServiceImpl<typeof Health> {
  return {
    check(request) {
      const state = status.get(request.service);
      if (state === undefined) {
        throw new ConnectError(`unknown service "${request.service}"`, Code.NotFound);
      }
      return { status: state };
    },
    async *watch(request, ctx) {
      for await (const state of status.watch(request.service, ctx.signal)) {
        yield { status: state };
      }
    },
  };
}
