/** The root Hono app of a member: public routes, internal routes, one error path. */
import { Hono } from "hono";
import { internalBodyBytesMax } from "./body.ts";
import type { MemberContext } from "./context.ts";
import { notFound, onError } from "./errors.ts";
import { frontDoor } from "./front-door.ts";
import { clusterAuth } from "./internal-auth.ts";
import { kvHandler } from "./kv-handler.ts";
import { Metrics } from "./metrics.ts";
import { metricsRoutes } from "./metrics-routes.ts";
import { publicRoutes } from "./public-routes.ts";
import { uiRoutes } from "./ui-routes.ts";

export function createApp(ctx: MemberContext, internal: Hono): Hono {
  const app = new Hono();
  // Every request passes the front door first (front-door.ts): URL, route name, Origin, client
  // token, body deadline, HEAD. Then key requests are answered before the router (kv-handler.ts).
  const metrics = ctx.metrics ?? new Metrics();
  metrics.bind(ctx);
  const fast = kvHandler(ctx, metrics.observeKey);
  // GET /metrics: key requests are counted by the key handler itself, routed ones by a wrapper,
  // and what the front door answers on its own (refusals, cheap HEADs) below. The door calls the
  // function behind it synchronously, so `served` tells which case a request was.
  let served = false;
  const door = frontDoor({
    advertise: ctx.advertise,
    allowOrigins: ctx.config.allowOrigins,
    ...(ctx.tokens === undefined ? {} : { tokens: ctx.tokens }),
    sched: ctx.sched,
    bodyReadTimeoutMs: ctx.config.timers.bodyReadTimeoutMs,
  }, (req, raw) => {
    served = true;
    return fast(req, raw) ?? meteredRouted(req);
  });
  app.route("/", publicRoutes(ctx, door.counts));
  app.route("/", metricsRoutes(metrics));
  app.route("/", uiRoutes(ctx));
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
  // app.request() comes through here too.
  const routed = app.fetch;
  const meteredRouted = metrics.meter(routed);
  app.fetch = (req) => {
    served = false;
    const answer = door.fetch(req);
    if (served) return answer;
    // Refused at the door (at once), or a HEAD the door answers itself (/kv/all-data,
    // /cluster/status: headers only).
    if (!(answer instanceof Promise)) metrics.observe(req, answer.status);
    else void answer.then((res) => metrics.observe(req, res.status), () => {});
    return answer;
  };
  return app;
}
