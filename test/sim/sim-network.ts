/**
 * The simulator's network: every request between members (the `fetch` each member's peer client
 * is built on) and every client request is an event on the simulated clock, delivered after a
 * seeded delay, so random delays also reorder. Per seed it can drop a message, deliver a request
 * twice (the duplicate's answer is discarded), and cut links (any set of directed pairs: a
 * symmetric or one-way partition, one member isolated, a majority/minority split). A lost request
 * or answer is silence: the caller's own timeout (on simulated time, through `init.signal`) ends
 * the call. A paused member's deliveries wait until it resumes; a crashed member refuses.
 * Not a test file itself (no `.test.` in the name).
 */
import type { FetchFn, InProcessServer } from "../../src/transport/index.ts";
import type { Rng } from "../unit/seeded.ts";
import type { SimProc, SimWorld } from "./sim-scheduler.ts";

export interface Weather {
  /** Probability that one message (request or answer) is lost. */
  dropRate: number;
  /** Probability that a request is delivered twice. */
  dupRate: number;
  /** One-way delay of a message: uniform in [min, max] ms. */
  delayMinMs: number;
  delayMaxMs: number;
}

export const CALM: Weather = { dropRate: 0, dupRate: 0, delayMinMs: 1, delayMaxMs: 3 };

interface Endpoint {
  readonly proc: SimProc;
  readonly server: InProcessServer;
}

export class SimNetwork {
  weather: Weather = CALM;
  /** Cut links, as `from>to` address pairs. */
  readonly blocked = new Set<string>();
  readonly #endpoints = new Map<string, Endpoint>();
  sent = 0;
  dropped = 0;
  duplicated = 0;

  /**
   * `rng` draws the delays, drops and duplicates of every message but the listings' (a client's
   * `GET /kv?prefix=` and the `kv/list` calls it fans out), which draw from `listRng`: adding
   * listings to the simulation shifts none of the other messages' draws.
   */
  constructor(readonly world: SimWorld, readonly rng: Rng, readonly listRng: Rng = rng) {}

  #rngFor(url: URL): Rng {
    const listing = url.pathname === "/internal/v1/kv/list" ||
      (url.pathname === "/kv" && url.searchParams.has("prefix"));
    return listing ? this.listRng : this.rng;
  }

  /** Serve `server` at `address`, as process `proc` (replaces a crashed predecessor). */
  listen(address: string, proc: SimProc, server: InProcessServer): void {
    this.#endpoints.set(address, { proc, server });
  }

  /** Nobody serves `address` any more: connections to it are refused. */
  close(address: string): void {
    this.#endpoints.delete(address);
  }

  cut(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
  }

  healLinks(): void {
    this.blocked.clear();
  }

  #delay(rng: Rng): number {
    const w = this.weather;
    return w.delayMinMs + rng.int(w.delayMaxMs - w.delayMinMs + 1);
  }

  /** Whether one message from `from` to `to` is lost (cut link or bad luck). */
  #lost(from: string, to: string, faulty: boolean, rng: Rng): boolean {
    if (!faulty) return false;
    if (this.blocked.has(`${from}>${to}`)) return true;
    return this.weather.dropRate > 0 && rng.next() < this.weather.dropRate;
  }

  /** The fetch a member at `from`, running as `proc`, uses for its peer calls. */
  fetchFrom(from: string, proc: SimProc): FetchFn {
    return (url, init) => this.send(from, proc, url, init, true);
  }

  /**
   * Send one request. `faulty` applies drops, duplicates and cut links (member-to-member
   * messages); client requests only see delays, pauses and crashes.
   */
  send(
    from: string,
    proc: SimProc,
    url: string,
    init: RequestInit,
    faulty: boolean,
  ): Promise<Response> {
    this.sent++;
    const parsed = new URL(url);
    const to = parsed.host;
    const rng = this.#rngFor(parsed);
    const { signal, ...rest } = init;
    return new Promise<Response>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void) => {
        if (settled) return;
        settled = true;
        signal?.removeEventListener("abort", onAbort);
        fn();
      };
      const onAbort = () => finish(() => reject(signal!.reason));
      if (signal) {
        if (signal.aborted) return reject(signal.reason);
        signal.addEventListener("abort", onAbort);
      }
      const target = this.#endpoints.get(to);
      if (target === undefined || target.proc.dead) {
        const refused = new Error(`connection refused (${to})`);
        proc.deliver(this.#delay(rng), () => finish(() => reject(refused)));
        return;
      }
      const copies = faulty && this.weather.dupRate > 0 && rng.next() < this.weather.dupRate
        ? 2
        : 1;
      if (copies === 2) this.duplicated++;
      for (let copy = 0; copy < copies; copy++) {
        if (this.#lost(from, to, faulty, rng)) {
          this.dropped++;
          continue;
        }
        target.proc.deliver(this.#delay(rng), () => {
          void (async () => {
            const res = await target.server.fetch(new Request(url, rest));
            // A binary answer (the link's frames, test/sim/sim-link.ts) kept byte for byte.
            const binary = res.headers.get("content-type") === "application/octet-stream";
            const body = binary ? await res.arrayBuffer() : await res.text();
            if (copy > 0) return; // a duplicate's answer goes nowhere
            if (this.#lost(to, from, faulty, rng)) {
              this.dropped++;
              return;
            }
            const status = res.status;
            const headers = res.headers;
            proc.deliver(
              this.#delay(rng),
              () => finish(() => resolve(new Response(body, { status, headers }))),
            );
          })();
        });
      }
    });
  }
}
