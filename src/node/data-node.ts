/**
 * A data node: stores its replicas, coordinates any client request, and keeps a membership view
 * pushed by the orchestrator. It registers at start, retrying with backoff for as long as the
 * orchestrator is unreachable (it never exits for that), and registers again whenever views stop
 * arriving (the orchestrator restarted and knows nobody), carrying the members it knew.
 */
import type { Hono } from "hono";
import type { Config } from "../config.ts";
import { isNewerView, Ring, type View } from "../core/view.ts";
import { createApp } from "../http/app.ts";
import type { MemberContext } from "../http/context.ts";
import { nodeInternalRoutes } from "../http/internal-routes.ts";
import type { Logger } from "../log.ts";
import type { PeerClient, RegisterRequest } from "../transport/index.ts";
import { Coordinator } from "./coordinator.ts";
import { Store } from "./store.ts";

export class DataNode {
  readonly app: Hono;
  readonly store: Store;
  readonly coordinator: Coordinator;
  readonly incarnation: number;
  #view: View | undefined;
  #ring: Ring | undefined;
  #lastViewAtMs = 0;
  #registering = false;
  #stopped = false;
  #timers: ReturnType<typeof setInterval>[] = [];

  constructor(
    readonly config: Config,
    private readonly peers: PeerClient,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {
    this.incarnation = now();
    this.store = new Store(1);
    this.coordinator = new Coordinator({
      selfId: config.nodeId,
      ring: () => this.#ring,
      store: this.store,
      peers,
      now,
      requestTimeoutMs: config.timers.requestTimeoutMs,
    });
    const ctx: MemberContext = {
      role: "node",
      selfId: config.nodeId,
      advertise: config.advertise,
      incarnation: this.incarnation,
      config,
      coordinator: this.coordinator,
      store: this.store,
      log,
      view: () => this.#view,
      ring: () => this.#ring,
    };
    this.app = createApp(
      ctx,
      nodeInternalRoutes(ctx, { onView: (v) => this.adoptView(v, "push") }),
    );
  }

  get view(): View | undefined {
    return this.#view;
  }

  start(): void {
    void this.#registerLoop();
    const t = this.config.timers;
    this.#timers.push(
      setInterval(() => this.#watchdog(), Math.max(50, Math.floor(t.viewPushIntervalMs / 2))),
    );
  }

  stop(): void {
    this.#stopped = true;
    for (const t of this.#timers) clearInterval(t);
    this.#timers = [];
  }

  /** Adopt a view if it is newer than ours; returns whether it was adopted. */
  adoptView(view: View, from: "push" | "register"): boolean {
    this.#lastViewAtMs = this.now();
    if (!isNewerView(this.#view, view)) return false;
    const first = this.#view === undefined;
    const lineage = this.#view !== undefined && this.#view.instance !== view.instance;
    this.#view = view;
    this.store.resize(view.partitions);
    this.#ring = new Ring(view);
    const ringSize = this.#ring.table.length ? new Set(this.#ring.table.flat()).size : 0;
    const msg =
      `view epoch ${view.epoch} from ${from}: ${view.members.length} members, ${ringSize} in ring, N=${this.#ring.n}`;
    if (first || lineage) this.log.info(`${msg}${lineage ? " (new orchestrator instance)" : ""}`);
    else this.log.debug(msg);
    if (!view.members.some((m) => m.id === this.config.nodeId)) {
      // The orchestrator forgot us (e.g. it restarted and heard from others first): register again.
      void this.#registerLoop();
    }
    return true;
  }

  #watchdog(): void {
    if (this.#stopped || this.#registering) return;
    if (this.now() - this.#lastViewAtMs > this.config.timers.viewStaleMs) {
      this.log.warn(
        `no view from the orchestrator for ${this.config.timers.viewStaleMs}ms; registering again`,
      );
      void this.#registerLoop();
    }
  }

  #registerRequest(): RegisterRequest {
    const self = {
      id: this.config.nodeId,
      address: this.config.advertise,
      inRing: true,
      incarnation: this.incarnation,
    };
    const known = (this.#view?.members ?? [])
      .filter((m) => m.role === "node" && m.id !== self.id)
      .map((m) => ({ id: m.id, address: m.address, inRing: m.inRing, incarnation: m.incarnation }));
    return { self, known };
  }

  async #registerLoop(): Promise<void> {
    if (this.#registering) return;
    this.#registering = true;
    const orchestrator = this.config.orchestrator!;
    const t = this.config.timers;
    let backoffMs = 100;
    let attempt = 0;
    try {
      while (!this.#stopped) {
        attempt++;
        try {
          const res = await this.peers.register(
            orchestrator,
            this.#registerRequest(),
            t.requestTimeoutMs,
          );
          this.adoptView(res.view, "register");
          this.log.info(`registered with orchestrator ${orchestrator} as ${this.config.nodeId}`);
          return;
        } catch (e) {
          if (attempt === 1 || attempt % 20 === 0) {
            this.log.warn(
              `cannot register with orchestrator ${orchestrator} (attempt ${attempt}): ${
                (e as Error).message
              }; retrying`,
            );
          }
        }
        await new Promise((r) => setTimeout(r, backoffMs));
        backoffMs = Math.min(backoffMs * 2, t.registerBackoffMaxMs);
      }
    } finally {
      this.#registering = false;
    }
  }
}
