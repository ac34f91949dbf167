/**
 * TCP connections on the simulated clock, for the TCP peer link in the simulator
 * (`--transport tcp`): the real link client (src/transport/peer-tcp.ts) dials and the real link
 * server (src/http/peer-tcp-server.ts) listens through this, with the simulator's timers.
 *
 * A connection is two ends, each owned by its member's process. What one end writes reaches the
 * other in order (one stream per direction), each write after a seeded delay but never before
 * the one written before it. Faults, as TCP sees them:
 * - a cut link (SimNetwork.blocked, either way): bytes wait, and go on once it heals (TCP resends
 *   them); a dial across a cut gets no answer (the client's own hello timeout ends it);
 * - a paused process takes its bytes when it resumes (its events are held);
 * - a crashed process: the other end of each of its connections is closed (a reset), and dials to
 *   its port are refused until a new process listens there;
 * - drops and duplicates of the network's weather do not apply (TCP hides them); delays do, drawn
 *   from a stream of their own.
 * Not modelled: reading paused by back-pressure (pause/resume do nothing) and the kernel's send
 * buffer (unsentBytes is 0).
 * Not a test file itself (no `.test.` in the name).
 */
import type { TcpConn, TcpHandlers, TcpServer } from "../../src/platform/tcp.ts";
import type { Rng } from "../unit/seeded.ts";
import type { SimNetwork } from "./sim-network.ts";
import type { SimProc, SimWorld } from "./sim-scheduler.ts";

/** Connections opened and writes delivered in this process (a test checks the link was used). */
export const simTcpStats = { connections: 0, delivered: 0 };

/** A cut link is looked at again this often (ms) while bytes wait behind it. */
const RETRY_MS = 50;

interface Listener {
  readonly member: string;
  readonly proc: SimProc;
  readonly h: TcpHandlers;
}

class End implements TcpConn {
  other!: End;
  closed = false;
  /** Simulated time (ms) the last write toward the other end arrives: later ones come after. */
  lastArrival = 0;
  /** Bytes written toward the other end, not delivered yet, in order. */
  readonly outbox: { bytes: Uint8Array; at: number }[] = [];
  readonly unsentBytes = 0;

  constructor(
    readonly tcp: SimTcp,
    readonly member: string,
    readonly proc: SimProc,
    public h: TcpHandlers | undefined,
    readonly remote: string,
  ) {}

  write(bytes: Uint8Array): void {
    if (this.closed || bytes.length === 0) return;
    this.tcp.send(this, bytes.slice());
  }

  pause(): void {}
  resume(): void {}

  close(): void {
    if (this.closed) return;
    this.tcp.close(this);
  }
}

export class SimTcp {
  readonly #listeners = new Map<string, Listener>();
  readonly #ends = new Set<End>();
  connections = 0;

  constructor(readonly world: SimWorld, readonly net: SimNetwork, readonly rng: Rng) {}

  #delay(): number {
    const w = this.net.weather;
    return w.delayMinMs + this.rng.int(w.delayMaxMs - w.delayMinMs + 1);
  }

  #blocked(from: string, to: string): boolean {
    return this.net.blocked.has(`${from}>${to}`);
  }

  /** Listen on host:port as member `member` (replacing a crashed predecessor's listener). */
  listen(member: string, proc: SimProc, host: string, port: number, h: TcpHandlers): TcpServer {
    const key = `${host}:${port}`;
    const l: Listener = { member, proc, h };
    this.#listeners.set(key, l);
    return {
      stop: () => {
        if (this.#listeners.get(key) === l) this.#listeners.delete(key);
      },
      port,
    };
  }

  /** Dial host:port from member `from` (its process `proc`). */
  dial(from: string, proc: SimProc, host: string, port: number, h: TcpHandlers): Promise<TcpConn> {
    const l = this.#listeners.get(`${host}:${port}`);
    if (l === undefined || l.proc.dead) {
      return new Promise((_, reject) =>
        proc.deliver(this.#delay(), () => reject(new Error(`connection refused (${host}:${port})`)))
      );
    }
    // Across a cut the handshake never completes: the caller's hello timeout ends the link.
    if (this.#blocked(from, l.member) || this.#blocked(l.member, from)) {
      return new Promise(() => {});
    }
    this.connections++;
    simTcpStats.connections++;
    const a = new End(this, from, proc, h, `${host}:${port}`);
    const b = new End(this, l.member, l.proc, l.h, from);
    a.other = b;
    b.other = a;
    this.#ends.add(a);
    this.#ends.add(b);
    const d = this.#delay();
    return new Promise((resolve) => {
      l.proc.deliver(d, () => {
        if (!b.closed) l.h.open(b);
      });
      proc.deliver(d, () => {
        if (a.closed) return;
        h.open(a);
        resolve(a);
      });
    });
  }

  /** Queue `bytes` from `from` to its other end: delivered in order, one stream per direction. */
  send(from: End, bytes: Uint8Array): void {
    const at = Math.max(this.world.nowMs + this.#delay(), from.lastArrival);
    from.lastArrival = at;
    from.outbox.push({ bytes, at });
    if (from.outbox.length === 1) this.#pump(from);
  }

  /** Deliver the head of `from`'s outbox when due (later if the link is cut), then the next. */
  #pump(from: End): void {
    const head = from.outbox[0];
    if (head === undefined) return;
    const to = from.other;
    to.proc.deliver(Math.max(0, head.at - this.world.nowMs), () => {
      if (to.closed) {
        from.outbox.length = 0;
        return;
      }
      if (this.#blocked(from.member, to.member)) {
        // Held behind the cut, and everything after it (TCP resends once it heals).
        head.at = this.world.nowMs + RETRY_MS;
        return this.#pump(from);
      }
      from.outbox.shift();
      simTcpStats.delivered++;
      to.h?.data(to, head.bytes);
      this.#pump(from);
    });
  }

  /** `end` closes: the other end learns it after a delay, and its own close handler runs. */
  close(end: End): void {
    end.closed = true;
    this.#ends.delete(end);
    end.proc.deliver(0, () => end.h?.close(end));
    const other = end.other;
    other.proc.deliver(Math.max(this.#delay(), end.lastArrival - this.world.nowMs), () => {
      if (other.closed) return;
      other.closed = true;
      this.#ends.delete(other);
      other.h?.close(other);
    });
  }

  /** `proc` crashed: every connection it had is reset; its listeners are gone. */
  crash(proc: SimProc): void {
    for (const [key, l] of this.#listeners) if (l.proc === proc) this.#listeners.delete(key);
    for (const end of [...this.#ends]) {
      if (end.proc !== proc) continue;
      end.closed = true;
      this.#ends.delete(end);
      const other = end.other;
      other.proc.deliver(this.#delay(), () => {
        if (other.closed) return;
        other.closed = true;
        this.#ends.delete(other);
        other.h?.close(other);
      });
    }
  }
}
