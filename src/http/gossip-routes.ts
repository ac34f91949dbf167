/** POST /internal/v1/gossip: membership messages, on every member (see docs/protocol.md). */
import { Hono } from "hono";
import type { GossipAgent } from "../node/gossip-agent.ts";
import { GossipEnvelope } from "../transport/index.ts";
import { internalBodyBytesMax, parseBody } from "./body.ts";
import type { MemberContext } from "./context.ts";

export function gossipRoutes(ctx: MemberContext, agent: GossipAgent): Hono {
  const app = new Hono();
  const bodyMax = internalBodyBytesMax(ctx.config);
  app.post("/gossip", async (c) => {
    const envelope = await parseBody(c.req.raw, GossipEnvelope, bodyMax);
    agent.receive(envelope);
    return c.json({ ok: true as const });
  });
  return app;
}
