/** Peer-to-peer routes of a data node, under /internal/v1 (see docs/protocol.md). */
import { Hono } from "hono";
import type { View } from "../core/view.ts";
import { fromWire, ReadRequest, toWire, ViewPush, WriteRequest } from "../transport/index.ts";
import { parseBody } from "./body.ts";
import type { MemberContext } from "./context.ts";
import { DkvError } from "./errors.ts";

export interface NodeInternalHooks {
  /** A view arrived from the orchestrator. */
  onView(view: View): void;
}

export function nodeInternalRoutes(ctx: MemberContext, hooks: NodeInternalHooks): Hono {
  const app = new Hono();
  const store = ctx.store;
  if (store === undefined) throw new Error("nodeInternalRoutes needs a store");

  app.post("/kv/write", async (c) => {
    const req = await parseBody(c.req.raw, WriteRequest);
    if (ctx.view() === undefined) throw new DkvError("unavailable", "no membership view yet");
    const hadLive = req.records.map((w) => {
      const r = fromWire(w);
      ctx.coordinator.observe(r);
      return store.apply(r);
    });
    return c.json({ hadLive });
  });

  app.post("/kv/read", async (c) => {
    const req = await parseBody(c.req.raw, ReadRequest);
    if (ctx.view() === undefined) throw new DkvError("unavailable", "no membership view yet");
    const records = req.keys.map((k) => {
      const r = store.get(k);
      return r ? toWire(r) : null;
    });
    return c.json({ records });
  });

  app.post("/view", async (c) => {
    const req = await parseBody(c.req.raw, ViewPush);
    hooks.onView(req.view);
    return c.json({ ok: true as const });
  });

  return app;
}
