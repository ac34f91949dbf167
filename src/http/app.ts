/** The root Hono app of a member: public routes, internal routes, one error path. */
import { Hono } from "hono";
import { internalBodyBytesMax } from "./body.ts";
import type { MemberContext } from "./context.ts";
import { notFound, onError } from "./errors.ts";
import { clusterAuth } from "./internal-auth.ts";
import { kvHandler } from "./kv-handler.ts";
import { publicRoutes } from "./public-routes.ts";

export function createApp(ctx: MemberContext, internal: Hono): Hono {
  const app = new Hono();
  app.route("/", publicRoutes(ctx));
  if (ctx.auth === undefined) app.route("/internal/v1", internal);
  else {
    // With a cluster secret every internal route, and any unknown path under it, is signed.
    const guarded = new Hono();
    guarded.use("*", clusterAuth(ctx.auth, internalBodyBytesMax(ctx.config)));
    guarded.route("/", internal);
    app.route("/internal/v1", guarded);
  }
  app.notFound(notFound);
  app.onError(onError(ctx.log));
  // Key requests are answered before the router (kv-handler.ts); app.request() comes here too.
  const routed = app.fetch;
  const fast = kvHandler(ctx);
  app.fetch = (req, ...rest) => fast(req) ?? routed(req, ...rest);
  return app;
}
