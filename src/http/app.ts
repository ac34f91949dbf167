/** The root Hono app of a member: public routes, internal routes, one error path. */
import { Hono } from "hono";
import type { MemberContext } from "./context.ts";
import { notFound, onError } from "./errors.ts";
import { kvHandler } from "./kv-handler.ts";
import { publicRoutes } from "./public-routes.ts";

export function createApp(ctx: MemberContext, internal: Hono): Hono {
  const app = new Hono();
  app.route("/", publicRoutes(ctx));
  app.route("/internal/v1", internal);
  app.notFound(notFound);
  app.onError(onError(ctx.log));
  // Key requests are answered before the router (kv-handler.ts); app.request() comes here too.
  const routed = app.fetch;
  const fast = kvHandler(ctx);
  app.fetch = (req, ...rest) => fast(req) ?? routed(req, ...rest);
  return app;
}
