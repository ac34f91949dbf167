/**
 * The coordinator: any member turns a client request into replica calls. Writes go to every
 * replica in parallel and answer after W acks; reads ask R replicas (falling back to the others
 * when one fails) and return the newest version. A replica that is this node is served from the
 * local store without a network hop.
 */
import { type HlcState, observe, tick } from "../core/hlc.ts";
import { type Consistency, requiredAcks } from "../core/placement.ts";
import { gather } from "../core/quorum.ts";
import { isLive, type KvRecord, newest } from "../core/record.ts";
import type { Ring, ViewMember } from "../core/view.ts";
import { DkvError } from "../http/errors.ts";
import { fromWire, type PeerClient, toWire } from "../transport/index.ts";
import type { Store } from "./store.ts";

export interface CoordinatorDeps {
  /** Id stamped into versions this member issues. */
  readonly selfId: string;
  /** The current ring, or undefined before the first view. */
  ring(): Ring | undefined;
  /** This member's own store, when it is a data node. */
  readonly store?: Store;
  readonly peers: PeerClient;
  /** Wall clock in ms (injected). */
  now(): number;
  readonly requestTimeoutMs: number;
}

export interface WriteOutcome {
  readonly record: KvRecord;
  /** Whether any acking replica held a live value before (for DELETE's 404). */
  readonly hadLive: boolean;
}

export class Coordinator {
  readonly #hlc: HlcState = { wallMs: 0, counter: 0 };

  constructor(private readonly deps: CoordinatorDeps) {}

  /** Fold a version seen from a peer into our clock. */
  observe(record: KvRecord): void {
    observe(this.#hlc, record.version, this.deps.now());
  }

  #ring(): Ring {
    const ring = this.deps.ring();
    if (ring === undefined || ring.n === 0) {
      throw new DkvError(
        "unavailable",
        "no membership view yet: this member has not joined a cluster",
      );
    }
    return ring;
  }

  /** Live replicas first in preference order; DOWN ones are not tried (they fail at once). */
  #targets(replicas: ViewMember[]): ViewMember[] {
    const self = replicas.filter((m) => m.id === this.deps.selfId && this.deps.store);
    const rest = replicas.filter((m) => m.id !== this.deps.selfId && m.state !== "DOWN");
    return [...self, ...rest];
  }

  async #writeTo(m: ViewMember, record: KvRecord): Promise<boolean> {
    if (m.id === this.deps.selfId && this.deps.store) return this.deps.store.apply(record);
    const res = await this.deps.peers.write(
      m.address,
      { records: [toWire(record)] },
      this.deps.requestTimeoutMs,
    );
    return res.hadLive[0] === true;
  }

  async #readFrom(m: ViewMember, key: string): Promise<KvRecord | undefined> {
    if (m.id === this.deps.selfId && this.deps.store) return this.deps.store.get(key);
    const res = await this.deps.peers.read(m.address, { keys: [key] }, this.deps.requestTimeoutMs);
    const w = res.records[0];
    return w ? fromWire(w) : undefined;
  }

  async write(
    key: string,
    value: string,
    tombstone: boolean,
    consistency: Consistency,
  ): Promise<WriteOutcome> {
    const ring = this.#ring();
    const replicas = ring.replicas(key);
    const need = requiredAcks(consistency, replicas.length);
    const version = tick(this.#hlc, this.deps.now(), this.deps.selfId);
    const record: KvRecord = { key, value: tombstone ? "" : value, version, tombstone };
    const targets = this.#targets(replicas);
    const byId = new Map(targets.map((m) => [m.id, m]));
    const out = await gather(
      targets.map((m) => m.id),
      need,
      "all",
      (id) => this.#writeTo(byId.get(id)!, record),
    );
    if (!out.reached) {
      throw new DkvError(
        "unavailable",
        `only ${out.ok.length} of ${replicas.length} replicas acknowledged; ${consistency} needs ${need}` +
          describeFailures(out.failed, replicas, targets),
      );
    }
    return { record, hadLive: out.ok.some((h) => h) };
  }

  async read(key: string, consistency: Consistency): Promise<KvRecord | undefined> {
    const ring = this.#ring();
    const replicas = ring.replicas(key);
    const need = requiredAcks(consistency, replicas.length);
    const targets = this.#targets(replicas);
    const byId = new Map(targets.map((m) => [m.id, m]));
    const out = await gather(
      targets.map((m) => m.id),
      need,
      "need",
      (id) => this.#readFrom(byId.get(id)!, key),
    );
    if (!out.reached) {
      throw new DkvError(
        "unavailable",
        `only ${out.ok.length} of ${replicas.length} replicas answered; ${consistency} needs ${need}` +
          describeFailures(out.failed, replicas, targets),
      );
    }
    const best = newest(out.ok);
    if (best) this.observe(best);
    return isLive(best) ? best : undefined;
  }
}

function describeFailures(
  failed: readonly { target: string; reason: string }[],
  replicas: readonly ViewMember[],
  targets: readonly ViewMember[],
): string {
  const parts = failed.map((f) => `${f.target}: ${f.reason}`);
  for (const r of replicas) if (!targets.includes(r)) parts.push(`${r.id}: DOWN`);
  return parts.length ? ` (${parts.join("; ")})` : "";
}
