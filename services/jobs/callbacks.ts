/**
 * psik's job callbacks: every transition after NEW of a job with a
 * `callback` URL is POSTed there as psik's Callback {jobid, jobndx, state,
 * info}, signed as psik signs it (psik/web.py: `x-hub-signature-256:
 * sha256=<hex HMAC-SHA256 of the body>`). Each job has its own bounded queue,
 * sent in order, with retries and backoff, so a dead URL never holds up the
 * job queue or another job's callbacks.
 */
import { createHmac } from "node:crypto";
import type { Logger } from "../common/logger.js";
import { backoffMs, sleep } from "../common/backoff.js";
import { JobState, psikName } from "./job-states.js";
import type { JobRecord, JobStore, TransitionRecord } from "./job-store.js";

/** Options of {@link JobCallbacks}. */
export interface JobCallbackOptions {
  store: JobStore;
  logger: Logger;
  /** Tries per callback before it is given up; default 6. */
  attempts?: number;
  /** Callbacks held per job; past it the oldest not-final ones are dropped. Default 64. */
  maxQueuedPerJob?: number;
  /** How long one POST may take, in ms; default 10 s. */
  timeoutMs?: number;
}

/** The signature psik puts in `x-hub-signature-256`. */
export function signCallback(body: string, secret: string): string {
  return `sha256=${createHmac("sha256", secret).update(body, "utf8").digest("hex")}`;
}

/** Headers a job's cb_headers may not replace. */
const ownHeaders = new Set(["content-type", "content-length", "host", "x-hub-signature-256"]);

/** Why `url` may not be a callback, or undefined when it may. */
export function refuseCallbackUrl(url: string, allowedPrefixes: string[]): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "is not a URL";
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return "must be an http:// or https:// URL";
  // http://allowed-host:80@elsewhere/ starts with an allowed prefix but goes elsewhere.
  if (parsed.username || parsed.password) return "may not carry a user name or password";
  if (!allowedPrefixes.some((prefix) => parsed.href.startsWith(prefix))) {
    return allowedPrefixes.length
      ? `goes nowhere this job queue sends callbacks: its URL must start with ${allowedPrefixes.join(" or ")}`
      : "cannot be used: this job queue sends no callbacks (its config allows no callback URLs)";
  }
  return undefined;
}

/** Why a cb_headers entry is refused, or undefined. */
export function refuseCallbackHeader(name: string, value: string): string | undefined {
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) return "is not an HTTP header name";
  if (ownHeaders.has(name.toLowerCase())) return "is set by the job queue itself";
  if (/[\r\n\0]/.test(value)) return "values are one line";
  return undefined;
}

interface Pending {
  body: string;
  final: boolean;
}

export class JobCallbacks {
  readonly #options: JobCallbackOptions;
  readonly #queues = new Map<string, Pending[]>();
  readonly #closed = new AbortController();
  readonly #sending = new Set<Promise<void>>();
  readonly #onTransition = (job: JobRecord, t: TransitionRecord) => this.#enqueue(job, t);

  constructor(options: JobCallbackOptions) {
    this.#options = options;
    options.store.on("transition", this.#onTransition);
  }

  /** Stops sending; callbacks still queued are dropped. */
  async close(): Promise<void> {
    this.#options.store.off("transition", this.#onTransition);
    this.#closed.abort();
    await Promise.allSettled([...this.#sending]);
  }

  #enqueue(job: JobRecord, t: TransitionRecord) {
    if (!job.spec.callback || t.state === JobState.NEW || this.#closed.signal.aborted) return;
    // psik's Callback as pydantic writes it: these keys in this order, no spaces.
    const body = JSON.stringify({ jobid: job.id, jobndx: t.jobndx, state: psikName(t.state), info: t.info });
    const final = t.state === JobState.COMPLETED || t.state === JobState.CANCELED || t.state === JobState.FAILED;
    const queue = this.#queues.get(job.id);
    if (queue) {
      if (queue.length >= (this.#options.maxQueuedPerJob ?? 64)) {
        const drop = queue.findIndex((p) => !p.final);
        this.#options.logger.warn({ job: job.id, callback: job.spec.callback }, "a job's callback URL is not keeping up; dropping its oldest callback");
        queue.splice(drop === -1 ? 0 : drop, 1);
      }
      queue.push({ body, final });
      return;
    }
    const fresh = [{ body, final }];
    this.#queues.set(job.id, fresh);
    const sending = this.#drain(job, fresh).finally(() => {
      this.#queues.delete(job.id);
      this.#sending.delete(sending);
    });
    this.#sending.add(sending);
  }

  async #drain(job: JobRecord, queue: Pending[]) {
    while (queue.length && !this.#closed.signal.aborted) {
      const next = queue[0]!;
      await this.#send(job, next.body);
      queue.shift();
    }
  }

  async #send(job: JobRecord, body: string) {
    const { logger } = this.#options;
    const headers: Record<string, string> = { ...job.spec.cbHeaders, "content-type": "application/json", accept: "application/json" };
    if (job.spec.cbSecret) headers["x-hub-signature-256"] = signCallback(body, job.spec.cbSecret);
    const attempts = this.#options.attempts ?? 6;
    for (let attempt = 0; attempt < attempts; attempt++) {
      let failure: string;
      try {
        const response = await fetch(job.spec.callback, {
          method: "POST",
          body,
          headers,
          redirect: "error", // a redirect could lead past the allow-list
          signal: AbortSignal.any([this.#closed.signal, AbortSignal.timeout(this.#options.timeoutMs ?? 10_000)]),
        });
        await response.body?.cancel();
        if (response.ok) return;
        failure = `HTTP ${response.status}`;
      } catch (error) {
        if (this.#closed.signal.aborted) return;
        failure = (error as Error).message;
      }
      logger.info({ job: job.id, callback: job.spec.callback, attempt: attempt + 1, failure }, "a job callback failed");
      if (attempt + 1 < attempts) await sleep(backoffMs(attempt, 500, 30_000), this.#closed.signal, true);
    }
    logger.warn({ job: job.id, callback: job.spec.callback, attempts }, "a job callback was given up");
  }
}
