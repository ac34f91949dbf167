/** POST /internal/v1/gossip: membership messages, on every member (see docs/protocol.md). */
import { Hono } from "hono";
import type { GossipAgent } from "../node/gossip-agent.ts";
import { GossipEnvelope } from "../transport/index.ts";
import { authenticated, internalBodyBytesMax, parseBody } from "./body.ts";
import type { MemberContext } from "./context.ts";
import { DkvError } from "./errors.ts";

/**
 * One gossip message taken in, over HTTP or the TCP peer link: `signer` is the member id that
 * signed it (the request's, or the link's hello), undefined without a cluster secret.
 */
export type GossipCall = (envelope: GossipEnvelope, signer: string | undefined) => { ok: true };

export function gossipCall(ctx: MemberContext, agent: GossipAgent): GossipCall {
  return (envelope, signer) => {
    // With a secret, a message speaks only for the member that signed it.
    if (ctx.auth !== undefined && signer !== envelope.msg.from) {
      const why = `gossip from ${JSON.stringify(envelope.msg.from.slice(0, 64))} signed by ` +
        `${JSON.stringify((signer ?? "").slice(0, 64))}`;
      ctx.auth.noteRefused(why);
      throw new DkvError("unauthorized", `not authenticated: ${why}`);
    }
    agent.receive(envelope);
    return { ok: true as const };
  };
}

export function gossipRoutes(ctx: MemberContext, agent: GossipAgent): Hono {
  const app = new Hono();
  const bodyMax = internalBodyBytesMax(ctx.config);
  const take = gossipCall(ctx, agent);
  app.post("/gossip", async (c) => {
    const envelope = await parseBody(c.req.raw, GossipEnvelope, bodyMax);
    return c.json(take(envelope, authenticated.get(c.req.raw)?.sender));
  });
  return app;
}
