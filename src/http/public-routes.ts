/**
 * The public API, served by every member (nodes and the orchestrator):
 * /kv/{key}, /kv/all-data, /all-nodes, /all-nodes/{key}, /health.
 */
import { Hono } from "hono";
import { formatVersion } from "../core/hlc.ts";
import type { KvRecord } from "../core/record.ts";
import type { ViewMember } from "../core/view.ts";
import { DkvError } from "./errors.ts";
import type { MemberContext } from "./context.ts";
import { parseConsistency, parseKey, readValue } from "./validate.ts";

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

function recordJson(r: KvRecord) {
  return { status: "SUCCESS", key: r.key, value: r.value, version: formatVersion(r.version) };
}

/** Raw path after the `/kv/` prefix, still percent-encoded. */
function rawKeyPath(url: string): string {
  const path = new URL(url).pathname;
  return path.slice("/kv/".length);
}

export function publicRoutes(ctx: MemberContext): Hono {
  const app = new Hono();
  const keyBytesMax = ctx.config.keyBytesMax;

  app.get(
    "/health",
    (c) => c.json({ status: "UP", id: ctx.selfId, role: ctx.role, incarnation: ctx.incarnation }),
  );

  app.get("/all-nodes", (c) => c.json({ allNodes: listMembers(ctx).map(memberJson) }));

  app.get("/all-nodes/*", (c) => {
    const key = parseKey(new URL(c.req.url).pathname.slice("/all-nodes/".length), keyBytesMax);
    const ring = ctx.ring();
    if (ring === undefined) throw new DkvError("unavailable", "no membership view yet");
    return c.json({ allNodes: ring.replicas(key).map(memberJson) });
  });

  app.get("/kv/all-data", (c) => {
    const out: Record<string, string> = {};
    if (ctx.store) { for (const r of ctx.store.live()) out[r.key] = r.value; }
    return c.json(out);
  });

  app.get("/kv/*", async (c) => {
    const key = parseKey(rawKeyPath(c.req.url), keyBytesMax);
    const record = await ctx.coordinator.read(key, parseConsistency(c.req.query("consistency")));
    if (record === undefined) throw new DkvError("not_found", `key '${key}' not found`);
    return c.json(recordJson(record));
  });

  const set = async (c: import("hono").Context) => {
    const key = parseKey(rawKeyPath(c.req.url), keyBytesMax);
    const consistency = parseConsistency(c.req.query("consistency"));
    const value = await readValue(c.req.raw, ctx.config.valueBytesMax);
    const out = await ctx.coordinator.write(key, value, false, consistency);
    return c.json(recordJson(out.record));
  };
  app.post("/kv/*", set);
  app.put("/kv/*", set);

  app.delete("/kv/*", async (c) => {
    const key = parseKey(rawKeyPath(c.req.url), keyBytesMax);
    const out = await ctx.coordinator.write(
      key,
      "",
      true,
      parseConsistency(c.req.query("consistency")),
    );
    if (!out.hadLive) throw new DkvError("not_found", `key '${key}' not found`);
    return c.json({ status: "SUCCESS", key });
  });

  return app;
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
    incarnation: ctx.incarnation,
  }];
}
