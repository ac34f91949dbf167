/**
 * Hint delivery: every hint interval, hints held for a replica that the view shows UP are sent
 * to it in batches and deleted once it acknowledged them. Hints for a member that left the ring
 * are written to the key's current replicas instead. Hints older than half the tombstone grace
 * expire, so a late hint can never bring back a key whose tombstone was collected.
 */
import type { HintStore } from "../core/hint-store.ts";
import type { Ring } from "../core/view.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { type PeerClient, toWire } from "../transport/index.ts";
import type { Store } from "./store.ts";

export class HintDelivery {
  #running = false;
  delivered = 0;
  expired = 0;

  constructor(
    private readonly config: Config,
    private readonly hints: HintStore,
    private readonly store: Store,
    private readonly peers: PeerClient,
    private readonly log: Logger,
    private readonly ring: () => Ring | undefined,
    private readonly now: () => number,
  ) {}

  async round(): Promise<void> {
    const ring = this.ring();
    if (this.#running || ring === undefined || this.hints.count === 0) return;
    this.#running = true;
    try {
      const expired = this.hints.expire(this.now() - this.config.timers.tombstoneGraceMs / 2);
      if (expired > 0) {
        this.expired += expired;
        this.log.warn(
          `${expired} hints expired undelivered (older than half of --tombstone-grace)`,
        );
      }
      await Promise.all(this.hints.targets().map((target) => this.#deliver(ring, target)));
    } finally {
      this.#running = false;
    }
  }

  async #deliver(ring: Ring, targetId: string): Promise<void> {
    const member = ring.byId.get(targetId);
    const limits = { keysMax: this.config.batchKeysMax, bytesMax: this.config.batchBytesMax };
    const t = this.config.timers.requestTimeoutMs * 5;
    if (member !== undefined && member.inRing) {
      if (member.state !== "UP") return;
      // Deliver everything held for it, batch by batch, while it keeps accepting.
      for (let n = this.hints.countFor(targetId); n > 0; n = this.hints.countFor(targetId)) {
        const batch = this.hints.peek(targetId, limits);
        try {
          if (targetId === this.config.nodeId) batch.forEach((h) => this.store.apply(h.record));
          else {await this.peers.write(member.address, {
              to: targetId,
              records: batch.map((h) => toWire(h.record)),
            }, t);}
        } catch (e) {
          this.log.debug(`hint delivery to ${targetId} failed: ${(e as Error).message}`);
          return;
        }
        this.hints.remove(batch);
        this.delivered += batch.length;
        this.log.debug(`delivered ${batch.length} hints to ${targetId}`);
      }
      return;
    }
    // The target is out of the ring: hand its hints to the keys' current replicas.
    const batch = this.hints.peek(targetId, limits);
    const byOwner = new Map<string, typeof batch>();
    for (const h of batch) {
      for (const owner of ring.replicas(h.record.key)) {
        let list = byOwner.get(owner.id);
        if (list === undefined) byOwner.set(owner.id, list = []);
        list.push(h);
      }
    }
    let ok = true;
    for (const [ownerId, hs] of byOwner) {
      try {
        if (ownerId === this.config.nodeId) hs.forEach((h) => this.store.apply(h.record));
        else {
          const owner = ring.byId.get(ownerId)!;
          await this.peers.write(owner.address, {
            to: ownerId,
            records: hs.map((h) => toWire(h.record)),
          }, t);
        }
      } catch {
        ok = false;
      }
    }
    if (ok) {
      this.hints.remove(batch);
      this.delivered += batch.length;
    }
  }
}
