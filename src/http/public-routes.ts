/**
 * The routed part of the public API, served by every member (nodes and the orchestrator):
 * /kv/all-data, /all-nodes, /all-nodes/{key}, /health, /ready, /cluster/status, /admin/leave.
 * `/kv/{key}` itself is answered before the router, in kv-handler.ts.
 */
import { Hono } from "hono";
import type { Ring, ViewMember } from "../core/view.ts";
import { DkvError } from "./errors.ts";
import type { MemberContext } from "./context.ts";
import type { FrontDoorCounts } from "./front-door.ts";
import { kvParams, parseConsistency, parseKey, rawPath } from "./validate.ts";
import { runBatch } from "./batch.ts";
import { countKeys, listPage, pageJson, parseListQuery } from "./list.ts";
import { parseSince, watchResponse } from "./watch.ts";
import { recordJson } from "./kv-handler.ts";

/** The original project's member shape, plus state details. */
export function memberJson(m: ViewMember) {
  const colon = m.address.lastIndexOf(":");
  return {
    ip: m.address.slice(0, colon),
    port: Number(m.address.slice(colon + 1)),
    id: m.id,
    role: m.role,
    status: m.state,
    orchestrator: m.role === "orchestrator",
    inRing: m.inRing,
    incarnation: m.incarnation,
  };
}

export function publicRoutes(ctx: MemberContext, door: FrontDoorCounts): Hono {
  const app = new Hono();
  const keyBytesMax = ctx.config.keyBytesMax;

  app.get(
    "/health",
    (c) => c.json({ status: "UP", id: ctx.selfId, role: ctx.role, incarnation: ctx.incarnation() }),
  );

  // Readiness, for load balancers and orchestration systems (README: /health and /ready): 200 only
  // while this member can serve quorum requests for its ring and is not leaving; 503 FAILED JSON
  // with the reason.
  // /health stays liveness: the process answers.
  app.get("/ready", (c) => {
    const reason = ctx.leaving?.()
      ? "leaving the cluster (a graceful leave is handing its data off; it exits when done)"
      : ctx.coordinator.notReady();
    if (reason !== undefined) throw new DkvError("unavailable", `not ready: ${reason}`);
    const ring = ctx.ring()!;
    return c.json({
      status: "READY",
      id: ctx.selfId,
      role: ctx.role,
      epoch: ring.view.epoch,
      replicationFactor: ring.n,
      aliveInRing: ring.aliveInRing,
      inRing: ring.ids.length,
    });
  });

  app.get("/all-nodes", (c) => c.json({ allNodes: listMembers(ctx).map(memberJson) }));

  app.get("/all-nodes/*", (c) => {
    const key = parseKey(rawPath(c.req.url).slice("/all-nodes/".length), keyBytesMax);
    const ring = ctx.ring();
    if (ring === undefined) throw new DkvError("unavailable", "no membership view yet");
    return c.json({ allNodes: ring.replicas(key).map(memberJson) });
  });

  app.get("/kv/all-data", (c) => {
    if (c.req.query("watch") !== undefined) {
      throw new DkvError("bad_request", "key 'all-data' is reserved: it cannot be watched");
    }
    const out: Record<string, string> = {};
    // Binary values (not UTF-8) as base64 text here; GET /kv/{key} says which is which.
    if (ctx.store) { for (const r of ctx.store.live()) out[r.key] = recordJson(r).value; }
    return c.json(out);
  });

  app.get("/kv", async (c) => {
    const q = parseListQuery(ctx, c.req.url);
    if (q.watch) {
      return watchResponse(ctx, { prefix: q.prefix }, parseSince(c.req.raw, q.params.get("since")));
    }
    if (q.params.has("since")) throw new DkvError("bad_request", "since is for watches");
    if (q.count) return c.json({ status: "SUCCESS", count: await countKeys(ctx, q) });
    return c.json(pageJson(await listPage(ctx, q), q.keysOnly));
  });

  app.post("/kv/_batch", async (c) => {
    const params = kvParams(c.req.url, ["consistency"], "POST /kv/_batch");
    const consistency = parseConsistency(params?.get("consistency") ?? undefined);
    return c.json(await runBatch(ctx, c.req.raw, consistency));
  });

  app.get("/cluster/status", async (c) => c.json(await clusterStatus(ctx, door)));

  // The partition table, for clients that send each request straight to a replica (src/client).
  app.get("/cluster/ring", (c) => {
    const ring = ctx.ring();
    if (ring === undefined) throw new DkvError("unavailable", "no membership view yet");
    return c.json(ringJson(ring));
  });

  app.post("/admin/leave", (c) => {
    if (ctx.leave === undefined) {
      throw new DkvError("bad_request", "only a data node can leave the ring");
    }
    const refused = ctx.leave();
    if (refused !== undefined) throw new DkvError("conflict", refused);
    return c.json({ status: "SUCCESS", id: ctx.selfId, leaving: true }, 202);
  });

  return app;
}

/**
 * `GET /cluster/ring`: the view's epoch and settings, the members (id, address, role, state,
 * inRing), and per partition its replicas' ids in preference order. Keys map to partitions as
 * src/core/placement.ts says (murmur3 of the key's UTF-8 bytes, seed 0, mod partitions).
 */
export function ringJson(ring: Ring) {
  const v = ring.view;
  return {
    status: "SUCCESS",
    epoch: v.epoch,
    replicationFactor: v.replicationFactor,
    partitions: v.partitions,
    members: v.members.map((m) => ({
      id: m.id,
      address: m.address,
      role: m.role,
      state: m.state,
      inRing: m.inRing,
    })),
    replicas: ring.table,
  };
}

/** Every member's state from the view, with each reachable node's own figures. */
async function clusterStatus(ctx: MemberContext, door: FrontDoorCounts) {
  const view = ctx.view();
  const members = listMembers(ctx);
  const timeoutMs = ctx.config.timers.requestTimeoutMs;
  const rows = await Promise.all(members.map(async (m) => {
    const base = { id: m.id, address: m.address, role: m.role, state: m.state, inRing: m.inRing };
    if (m.role !== "node") return base;
    try {
      const s = m.id === ctx.selfId && ctx.status
        ? ctx.status()
        : await ctx.peers.status(m.address, timeoutMs);
      const { id: _id, ...figures } = s;
      return { ...base, ...figures };
    } catch (e) {
      return { ...base, error: `unreachable: ${(e as Error).message}` };
    }
  }));
  const orchestrator = members.find((m) => m.role === "orchestrator");
  return {
    status: "SUCCESS",
    answeredBy: ctx.selfId,
    epoch: view?.epoch ?? null,
    replicationFactor: view?.replicationFactor ?? null,
    partitions: view?.partitions ?? null,
    orchestrator: orchestrator
      ? { id: orchestrator.id, address: orchestrator.address, state: orchestrator.state }
      : null,
    dutyHolder: ctx.dutyHolder?.() ?? null,
    /** The answering member's own routing figures (nodes also have theirs in their rows). */
    routing: { ...ctx.coordinator.routing },
    /**
     * Members whose settings that must agree (N, P, key/value/member limits) differ from this
     * member's, as it heard when they met (README: settings that must agree).
     */
    settingsMismatches: ctx.settingsMismatches?.() ?? [],
    /** Internal calls this member refused, and peer answers it did not accept, unsigned. */
    authRefused: ctx.auth?.refused ?? 0,
    /** Client requests this member refused: no or unknown token, too low a role; foreign Origin. */
    tokenRefused: door.tokenRefused,
    originRefused: door.originRefused,
    /** The answering member's RESP front (--resp-port): connections, per-command figures. */
    resp: ctx.respStatus?.() ?? null,
    members: rows,
  };
}

/** Members this member knows: the view, or just itself before the first view. */
function listMembers(ctx: MemberContext): ViewMember[] {
  const view = ctx.view();
  if (view !== undefined) return [...view.members];
  return [{
    id: ctx.selfId,
    address: ctx.advertise,
    role: ctx.role,
    state: "UP",
    inRing: false,
    incarnation: ctx.incarnation(),
  }];
}
