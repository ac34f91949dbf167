/**
 * The web dashboard (src/http/ui/): `GET /ui` serves the page, `GET /` redirects to it, and
 * `GET /ui/partitions` gives the partition map it draws. The page holds no data, so it is open
 * even with client tokens; everything it shows comes from the API with the visitor's token.
 */
import { Hono } from "hono";
import type { MemberContext } from "./context.ts";
import { dashboardPage } from "./ui/page.ts";

export function uiRoutes(ctx: MemberContext): Hono {
  const app = new Hono();
  let page: string | undefined; // built on first use, then kept
  app.get("/", (c) => c.redirect("/ui", 302));
  app.get("/ui", (c) => {
    page ??= dashboardPage(`${ctx.role} ${ctx.selfId}`);
    return c.html(page, 200, { "cache-control": "no-cache" });
  });
  /** The partition table: each partition's replicas in preference order, and the members. */
  app.get("/ui/partitions", (c) => {
    const ring = ctx.ring();
    const view = ctx.view();
    return c.json({
      epoch: view?.epoch ?? null,
      replicationFactor: ring?.n ?? null,
      members: ring?.ids ?? [],
      table: ring?.table ?? [],
    });
  });
  return app;
}
