/**
 * The orchestrator: keeps the member table, probes every member concurrently each health
 * interval, and pushes the view (epoch + members + replication factor + partitions) to every
 * member on each change and at least every view-push interval. It stores no data, but serves the
 * public API by routing to the owners with the same coordinator the nodes use.
 */
import { Hono } from "hono";
import type { Config } from "../config.ts";
import { MemberTable } from "../core/membership.ts";
import { Ring, type View, type ViewMember } from "../core/view.ts";
import { createApp } from "../http/app.ts";
import { internalBodyBytesMax, parseBody } from "../http/body.ts";
import type { MemberContext } from "../http/context.ts";
import { DkvError } from "../http/errors.ts";
import type { Logger } from "../log.ts";
import { Coordinator } from "../node/coordinator.ts";
import { LeaveRequest, type PeerClient, RegisterRequest } from "../transport/index.ts";

export class Orchestrator {
  readonly app: Hono;
  readonly table: MemberTable;
  readonly instance: string;
  readonly incarnation: number;
  #epoch = 0;
  #view: View;
  #ring: Ring;
  #probing = false;
  #coordinator: Coordinator;
  #timers: ReturnType<typeof setInterval>[] = [];

  constructor(
    readonly config: Config,
    private readonly peers: PeerClient,
    private readonly log: Logger,
    instance: string,
    private readonly now: () => number = Date.now,
  ) {
    this.instance = instance;
    this.incarnation = now();
    this.table = new MemberTable(config.timers, config.membersMax);
    this.#view = this.#buildView();
    this.#ring = new Ring(this.#view);
    const coordinator = this.#coordinator = new Coordinator({
      selfId: config.nodeId,
      ring: () => this.#ring,
      peers,
      now,
      requestTimeoutMs: config.timers.requestTimeoutMs,
      sloppyQuorum: config.sloppyQuorum,
      log,
      batchKeysMax: config.batchKeysMax,
      batchBytesMax: config.batchBytesMax,
    });
    const ctx: MemberContext = {
      role: "orchestrator",
      selfId: config.nodeId,
      advertise: config.advertise,
      incarnation: this.incarnation,
      config,
      coordinator,
      peers,
      log,
      view: () => this.#view,
      ring: () => this.#ring,
    };
    this.app = createApp(ctx, this.#internalRoutes());
  }

  get view(): View {
    return this.#view;
  }

  start(): void {
    const t = this.config.timers;
    this.#timers.push(setInterval(() => void this.healthRound(), t.healthIntervalMs));
    this.#timers.push(setInterval(() => void this.#pushAll(), t.viewPushIntervalMs));
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  #internalRoutes(): Hono {
    const app = new Hono();
    const bodyMax = internalBodyBytesMax(this.config);
    app.post("/register", async (c) => {
      const req = await parseBody(c.req.raw, RegisterRequest, bodyMax);
      const changed = this.table.register(req.self, req.known, this.now());
      if (changed === "full") {
        throw new DkvError(
          "unavailable",
          `membership is full (${this.config.membersMax} members, --max-members)`,
        );
      }
      if (changed) {
        this.log.info(
          `member ${req.self.id} at ${req.self.address} registered (knew ${req.known.length} others)`,
        );
        this.#changed();
      }
      return c.json({ view: this.#view });
    });
    app.post("/leave", async (c) => {
      const req = await parseBody(c.req.raw, LeaveRequest, bodyMax);
      if (this.table.get(req.id) === undefined) {
        throw new DkvError("not_found", `no member '${req.id}'`);
      }
      if (this.table.leave(req.id, this.now())) {
        this.log.info(`member ${req.id} is leaving: out of the ring`);
        this.#changed();
      }
      return c.json({ view: this.#view });
    });
    return app;
  }

  #buildView(): View {
    const self: ViewMember = {
      id: this.config.nodeId,
      address: this.config.advertise,
      role: "orchestrator",
      state: "UP",
      inRing: false,
      incarnation: this.incarnation,
    };
    const members: ViewMember[] = this.table.list().map((m) => ({
      id: m.id,
      address: m.address,
      role: "node",
      state: m.state,
      inRing: m.inRing,
      incarnation: m.incarnation,
    }));
    return {
      instance: this.instance,
      epoch: this.#epoch,
      replicationFactor: this.config.replicationFactor,
      partitions: this.config.partitions,
      members: [self, ...members],
    };
  }

  /** The view changed: new epoch, rebuilt ring, pushed to everyone. */
  #changed(): void {
    const before = this.#ring.table;
    this.#epoch++;
    this.#view = this.#buildView();
    this.#ring = new Ring(this.#view);
    this.#coordinator.onRing(this.#ring);
    const moved = before.reduce(
      (n, ids, p) => n + (ids.join() === this.#ring.table[p]?.join() ? 0 : 1),
      0,
    );
    const states = this.#view.members.filter((m) => m.role === "node").map((m) =>
      `${m.id}=${m.state}${m.inRing ? "" : "(out)"}`
    );
    this.log.info(
      `view epoch ${this.#epoch}: ${states.join(" ")}; ${moved} partitions changed replicas`,
    );
    void this.#pushAll();
  }

  /** Probe every member at once; apply results and time-based transitions. */
  async healthRound(): Promise<void> {
    if (this.#probing) return;
    this.#probing = true;
    try {
      const t = this.config.timers;
      const members = this.table.list();
      const results = await Promise.all(members.map(async (m) => {
        try {
          const h = await this.peers.health(m.address, t.probeTimeoutMs);
          // Someone else answering on that address is not this member.
          return { m, ok: h.id === undefined || h.id === m.id, incarnation: h.incarnation };
        } catch {
          return { m, ok: false, incarnation: undefined };
        }
      }));
      const nowMs = this.now();
      let changed = false;
      for (const r of results) {
        const before = r.m.state;
        if (this.table.probeResult(r.m.id, r.ok, nowMs, r.incarnation)) {
          changed = true;
          if (before !== r.m.state) this.log.info(`member ${r.m.id}: ${before} -> ${r.m.state}`);
        }
      }
      if (this.table.tick(nowMs)) changed = true;
      if (changed) this.#changed();
    } finally {
      this.#probing = false;
    }
  }

  async #pushAll(): Promise<void> {
    const view = this.#view;
    const timeoutMs = this.config.timers.requestTimeoutMs;
    await Promise.all(
      view.members.filter((m) => m.role === "node").map((m) =>
        this.peers.pushView(m.address, view, timeoutMs).catch((e: Error) => {
          if (m.state === "UP") this.log.debug(`push to ${m.id} failed: ${e.message}`);
        })
      ),
    );
  }
}
