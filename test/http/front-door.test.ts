/**
 * The front door (src/http/front-door.ts) in memory: client tokens on every member, Origin,
 * encoded route names, malformed URLs, HEAD without bodies, the body read deadline.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { parseTokenFile } from "../../src/security/client-tokens.ts";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

const READ = "read-token-0123456789", WRITE = "write-token-0123456789";
const ADMIN = "admin-token-0123456789";

function tokens() {
  const t = parseTokenFile(`${READ} read\n${WRITE} write\n${ADMIN} admin\n`);
  if (!t.ok) throw new Error(t.message);
  return t.tokens;
}

type App = { request: (p: string, i?: RequestInit) => Response | Promise<Response> };

async function send(
  app: App,
  method: string,
  path: string,
  opts: { token?: string; body?: string; headers?: Record<string, string> } = {},
) {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const res = await app.request(path, { method, headers, body: opts.body });
  const text = await res.text();
  return {
    status: res.status,
    text,
    body: text ? JSON.parse(text) : undefined,
    headers: res.headers,
  };
}

describe("client tokens (in memory)", () => {
  let c: MemoryCluster;
  beforeAll(async () => {
    c = await memoryCluster(3, [], Date.now, { tokens: tokens() });
  });
  afterAll(() => c.stop());

  test("each role gets exactly its routes, on nodes and on the orchestrator", async () => {
    // Statuses for: no token, wrong token, read, write, admin. 2xx/4xx of the route itself
    // (404 for a missing key, 202 for a leave) mean "let through".
    const table: [string, string, number[]][] = [
      ["GET", "/health", [200, 200, 200, 200, 200]],
      ["PUT", "/kv/k", [401, 401, 403, 200, 200]],
      ["GET", "/kv/k", [401, 401, 200, 200, 200]],
      ["DELETE", "/kv/gone", [401, 401, 403, 404, 404]],
      ["GET", "/kv/all-data", [401, 401, 403, 403, 200]],
      ["GET", "/all-nodes", [401, 401, 200, 200, 200]],
      ["GET", "/all-nodes/k", [401, 401, 200, 200, 200]],
      ["GET", "/cluster/status", [401, 401, 403, 403, 200]],
      ["GET", "/nowhere", [401, 401, 404, 404, 404]],
      // Last: the node's leave starts (202); the orchestrator cannot leave (400).
      ["POST", "/admin/leave", [401, 401, 403, 403, 0]],
    ];
    for (const app of [c.orchestrator.app, c.nodes[2]!.app]) {
      for (const [method, path, expected] of table) {
        const want = expected.map((s) => s || (app === c.orchestrator.app ? 400 : 202));
        const got: number[] = [];
        for (const token of [undefined, "wrong-token-0123456789", READ, WRITE, ADMIN]) {
          const body = method === "PUT" ? "v" : undefined;
          got.push((await send(app, method, path, { token, body })).status);
        }
        expect([method, path, got]).toEqual([method, path, want]);
      }
    }
  });

  test("401 and 403 are FAILED JSON; a 401 says Bearer", async () => {
    const app = c.nodes[0]!.app;
    const none = await send(app, "GET", "/kv/k");
    expect(none.body).toEqual({
      status: "FAILED",
      error: {
        errorMessage: "authentication required: send Authorization: Bearer TOKEN",
        errorSystemCode: 401,
      },
    });
    expect(none.headers.get("www-authenticate")).toBe('Bearer realm="dkv"');
    const wrong = await send(app, "GET", "/kv/k", { token: "nope-0123456789abcdef" });
    expect(wrong.body.error).toEqual({ errorMessage: "invalid token", errorSystemCode: 401 });
    expect(wrong.headers.get("www-authenticate")).toBe('Bearer realm="dkv", error="invalid_token"');
    expect(wrong.text).not.toContain("nope");
    const low = await send(app, "GET", "/kv/all-data", { token: READ });
    expect(low.body.error).toEqual({
      errorMessage: "a read token may not GET /kv/all-data: it needs admin",
      errorSystemCode: 403,
    });
    const basic = await send(app, "GET", "/kv/k", { headers: { authorization: `Basic ${READ}` } });
    expect(basic.status).toBe(401);
  });

  test("refused writes change nothing; refusals are counted in /cluster/status", async () => {
    const app = c.nodes[0]!.app;
    expect((await send(app, "PUT", "/kv/guarded", { token: READ, body: "x" })).status).toBe(403);
    expect((await send(app, "GET", "/kv/guarded", { token: ADMIN })).status).toBe(404);
    const status = await send(app, "GET", "/cluster/status", { token: ADMIN });
    expect(status.body.tokenRefused).toBeGreaterThan(0);
  });

  test("a role is decided on the decoded path the router sees", async () => {
    const app = c.nodes[0]!.app;
    // HEAD of /kv/%61ll-data is HEAD /kv/all-data to the router: admin, not a key read.
    expect((await send(app, "HEAD", "/kv/%61ll-data", { token: READ })).status).toBe(403);
    expect((await send(app, "HEAD", "/kv/%61ll-data", { token: ADMIN })).status).toBe(200);
    // As a GET it is the reserved key (a 400 for whoever may try).
    expect((await send(app, "GET", "/kv/%61ll-data", { token: ADMIN })).status).toBe(400);
  });

  test("internal routes are left to the cluster secret: no token asked", async () => {
    const r = await send(c.nodes[0]!.app, "GET", "/internal/v1/status");
    expect(r.status).toBe(200);
  });
});

describe("without tokens (the default), the rest of the door", () => {
  let c: MemoryCluster;
  beforeAll(async () => {
    c = await memoryCluster(3, [
      "--allow-origin",
      "http://app.example:3000",
      "--body-read-timeout",
      "100ms",
    ]);
  });
  afterAll(() => c.stop());

  test("no token needed", async () => {
    expect((await send(c.nodes[0]!.app, "PUT", "/kv/open", { body: "v" })).status).toBe(200);
  });

  test("a foreign Origin is refused (403) and nothing is written", async () => {
    const app = c.nodes[0]!.app;
    const evil = await send(app, "POST", "/kv/x", {
      body: "pwned",
      headers: { origin: "http://evil.example", "content-type": "text/plain" },
    });
    expect(evil.status).toBe(403);
    expect(evil.body.error.errorMessage).toStartWith("origin 'http://evil.example' is not allowed");
    const leave = await send(app, "POST", "/admin/leave", { headers: { origin: "null" } });
    expect(leave.status).toBe(403);
    expect((await send(app, "GET", "/kv/x")).status).toBe(404);
    expect(c.nodes[0]!.leaving).toBe(false);
    const status = await send(app, "GET", "/cluster/status");
    expect(status.body.originRefused).toBe(2);
  });

  test("its own origin, the host it was reached at, and --allow-origin are served", async () => {
    const app = c.nodes[0]!.app;
    const ok: Record<string, string>[] = [
      { origin: "http://mem:8080" },
      { origin: "http://app.example:3000" },
      { origin: "http://localhost:9999", host: "localhost:9999" },
    ];
    for (const headers of ok) {
      expect((await send(app, "PUT", "/kv/mine", { body: "v", headers })).status).toBe(200);
    }
    const other = await send(app, "PUT", "/kv/mine", {
      body: "v",
      headers: { origin: "http://mem:8081" },
    });
    expect(other.status).toBe(403);
  });

  test("an encoded route name is a 400 (never routed, signed or not)", async () => {
    const app = c.nodes[0]!.app;
    for (const path of ["/%69nternal/v1/status", "/%6Bv/x", "/kv%2Fx", "/%61dmin/leave"]) {
      const r = await send(app, path.startsWith("/%61") ? "POST" : "GET", path);
      expect([path, r.status, r.body.status]).toEqual([path, 400, "FAILED"]);
    }
    expect(c.nodes[0]!.leaving).toBe(false);
    // Keys may still be encoded.
    expect((await send(app, "PUT", "/kv/%69nternal", { body: "v" })).status).toBe(200);
  });

  test("a URL whose host does not parse is served by its path (it was a 500 outside the try)", async () => {
    // The runtime builds req.url from the client's Host header; only the path is parsed, under a
    // fixed host, so a malformed Host (`[oops`) no longer makes the request unparsable.
    const bad = {
      url: "http://[oops/./kv/x",
      method: "GET",
      headers: new Headers(),
      body: null,
    } as unknown as Request;
    const res = await c.nodes[0]!.app.fetch(bad);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      status: "FAILED",
      error: { errorMessage: "key 'x' not found", errorSystemCode: 404 },
    });
  });

  test("HEAD: headers only; /kv/all-data and /cluster/status build nothing", async () => {
    const app = c.nodes[0]!.app;
    await send(app, "PUT", "/kv/h", { body: "v" });
    const store = c.nodes[0]!.store;
    const live = store.live.bind(store);
    let dumped = 0;
    store.live = function* () {
      dumped++;
      yield* live();
    };
    try {
      const all = await send(app, "HEAD", "/kv/all-data");
      expect([all.status, all.text, all.headers.get("content-type")]).toEqual([
        200,
        "",
        "application/json",
      ]);
      expect(dumped).toBe(0);
      expect((await send(app, "GET", "/kv/all-data")).status).toBe(200);
      expect(dumped).toBe(1);
    } finally {
      store.live = live;
    }
    expect(await send(app, "HEAD", "/cluster/status")).toMatchObject({ status: 200, text: "" });
    expect(await send(app, "HEAD", "/kv/h")).toMatchObject({ status: 200, text: "" });
    expect(await send(app, "HEAD", "/kv/missing")).toMatchObject({ status: 404, text: "" });
    expect(await send(app, "HEAD", "/health")).toMatchObject({ status: 200, text: "" });
  });

  test("a body that does not arrive within --body-read-timeout: 408, nothing written", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(ctl) {
        ctl.enqueue(new TextEncoder().encode("partial"));
      },
      cancel() {
        cancelled = true;
      },
    });
    const res = await c.nodes[0]!.app.request("/kv/slow", {
      method: "PUT",
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(408);
    expect((await res.json()).error.errorMessage).toBe(
      "value did not arrive within 100ms (--body-read-timeout)",
    );
    expect(cancelled).toBe(true);
    expect((await send(c.nodes[0]!.app, "GET", "/kv/slow")).status).toBe(404);
  });
});
