/**
 * The cluster secret in memory (issue 9, parts 1 and 2): with a secret every internal call and
 * its answer is signed; unsigned, replayed, altered or foreign-secret calls are a 401 that
 * changes nothing and is counted; forged answers fail the call; a member with another secret
 * never joins; forged gossip is refused.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Config } from "../../src/config.ts";
import { silentLogger } from "../../src/log.ts";
import { realScheduler } from "../../src/platform/scheduler.ts";
import { DataNode } from "../../src/node/data-node.ts";
import { Orchestrator } from "../../src/orchestrator/orchestrator.ts";
import { AUTH_HEADER, type ClusterAuth } from "../../src/security/cluster-auth.ts";
import { createPeerClient, MemoryNetwork, PeerError } from "../../src/transport/index.ts";
import { memberAuth, type MemoryCluster, memoryCluster, testConfig } from "./memory-cluster.ts";

const enc = new TextEncoder();
const SECRET = enc.encode("correct horse battery staple, 32+ bytes long");
const OTHER = enc.encode("another cluster's secret, also 32+ bytes");
const T = () => Date.now();

type App = { request: (p: string, i?: RequestInit) => Response | Promise<Response> };

async function send(
  app: App,
  method: string,
  path: string,
  body?: unknown,
  auth?: ClusterAuth,
  tamper?: (bytes: Uint8Array<ArrayBuffer>) => Uint8Array<ArrayBuffer>,
) {
  const bytes = body === undefined ? undefined : enc.encode(JSON.stringify(body));
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (auth !== undefined) {
    headers[AUTH_HEADER] = auth.signRequest("mem:1", method, path, bytes).header;
  }
  const sent = bytes && tamper ? tamper(bytes) : bytes;
  const res = await app.request(path, { method, headers, ...(sent ? { body: sent } : {}) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined, res };
}

const wire = (k: string, v: string) => ({ k, v, t: T(), c: 0, n: "mem:8081" });

describe("with a cluster secret (in memory, views handed in)", () => {
  let c: MemoryCluster;
  /** A genuine peer's signer: same secret, another member's id. */
  let peer: ClusterAuth;
  beforeAll(async () => {
    c = await memoryCluster(3, [], Date.now, { secrets: [SECRET] });
    peer = memberAuth("mem:8081", [SECRET], c.nodes[1]!.config);
  });
  afterAll(() => c.stop());

  test("client writes and reads work: every replica call is signed and checked", async () => {
    const put = await c.nodes[0]!.app.request("/kv/signed?consistency=all", {
      method: "PUT",
      body: "yes",
    });
    expect(put.status).toBe(200);
    for (const n of c.nodes) expect(n.store.get("signed")?.value).toBe("yes");
    const get = await c.nodes[2]!.app.request("/kv/signed?consistency=all");
    expect(get.status).toBe(200);
    expect((await get.json()).value).toBe("yes");
    const status = await (await c.orchestrator.app.request("/cluster/status")).json();
    for (const m of status.members.filter((m: { role: string }) => m.role === "node")) {
      expect(m.error).toBeUndefined();
    }
    expect(status.authRefused).toBe(0);
  });

  test("an unsigned internal write: 401 FAILED, nothing stored, counted in /cluster/status", async () => {
    const node = c.nodes[0]!;
    const before = node.status().authRefused;
    const r = await send(node.app, "POST", "/internal/v1/kv/write", {
      to: "mem:8080",
      records: [wire("unsigned", "evil")],
    });
    expect(r.status).toBe(401);
    expect(r.body).toEqual({
      status: "FAILED",
      error: {
        errorMessage: expect.stringContaining("no x-dkv-auth header"),
        errorSystemCode: 401,
      },
    });
    expect(node.store.get("unsigned")).toBeUndefined();
    expect(node.status().authRefused).toBe(before + 1);
    const status = await (await c.nodes[1]!.app.request("/cluster/status")).json();
    const row = status.members.find((m: { id: string }) => m.id === "mem:8080");
    expect(row.authRefused).toBe(before + 1);
  });

  test("every internal route, and any path under /internal/v1, needs a signature", async () => {
    const posts: [string, unknown][] = [
      ["/kv/write", { to: "mem:8080", records: [] }],
      ["/kv/read", { to: "mem:8080", keys: ["signed"] }],
      ["/hints", { target: "mem:8081", records: [wire("h", "x")] }],
      ["/ae/digests", { partitions: [0] }],
      ["/ae/buckets", { partition: 0 }],
      ["/ae/versions", { partition: 0, buckets: [0], limit: 10 }],
      ["/rebalance/done", { partition: 0, from: "mem:8081" }],
      ["/gossip", {
        msg: {
          type: "ping",
          from: "x",
          fromAddress: "x:1",
          seq: 1,
          target: "mem:8080",
          updates: [],
        },
      }],
      ["/no-such-route", {}],
      ["/rebalance/records", {}], // a move frame's body is binary; unsigned, it is never read
    ];
    for (const [path, body] of posts) {
      const r = await send(c.nodes[0]!.app, "POST", `/internal/v1${path}`, body);
      expect([path, r.status]).toEqual([path, 401]);
    }
    expect((await send(c.nodes[0]!.app, "GET", "/internal/v1/status")).status).toBe(401);
    // An encoded route name is refused before any route (front-door.ts); encoded later segments
    // reach the same routes, and the same check.
    expect((await send(c.nodes[0]!.app, "GET", "/%69nternal/v1/status")).status).toBe(400);
    expect((await send(c.nodes[0]!.app, "GET", "/internal/v1/%73tatus")).status).toBe(401);
    const orch = await send(c.orchestrator.app, "POST", "/internal/v1/gossip", posts[7]![1]);
    expect(orch.status).toBe(401);
    // Signed, the same calls work (and an unknown path is an ordinary 404).
    expect((await send(c.nodes[0]!.app, "GET", "/internal/v1/status", undefined, peer)).status)
      .toBe(200);
    expect((await send(c.nodes[0]!.app, "POST", "/internal/v1/no-such-route", {}, peer)).status)
      .toBe(404);
  });

  test("a signed request passes once; sent again it is a replay: 401", async () => {
    const node = c.nodes[0]!;
    const body = enc.encode(JSON.stringify({ to: "mem:8080", records: [wire("once", "1")] }));
    const { header } = peer.signRequest("mem:8080", "POST", "/internal/v1/kv/write", body);
    const post = () =>
      node.app.request("/internal/v1/kv/write", {
        method: "POST",
        headers: { [AUTH_HEADER]: header, "content-type": "application/json" },
        body,
      });
    const first = await post();
    expect(first.status).toBe(200);
    expect(first.headers.get(AUTH_HEADER)).toStartWith("v2 mem%3A8080 ");
    node.store.apply({
      key: "once",
      value: "2",
      version: { wallMs: 1, counter: 0, nodeId: "a" },
      tombstone: false,
    });
    const again = await post();
    expect(again.status).toBe(401);
    expect((await again.json()).error.errorMessage).toContain("replayed request");
  });

  test("an altered body under a valid signature: 401, nothing stored", async () => {
    const node = c.nodes[0]!;
    const r = await send(
      node.app,
      "POST",
      "/internal/v1/kv/write",
      { to: "mem:8080", records: [wire("alter", "good")] },
      peer,
      (b) => enc.encode(new TextDecoder().decode(b).replace("good", "evil")),
    );
    expect(r.status).toBe(401);
    expect(r.body.error.errorMessage).toContain("bad signature");
    expect(node.store.get("alter")).toBeUndefined();
  });

  test("an unsigned body over the internal size limit is refused for the signature, unread", async () => {
    const huge = new Uint8Array(16 * 1024 * 1024).fill(0x20);
    const res = await c.nodes[0]!.app.request("/internal/v1/kv/write", {
      method: "POST",
      body: huge,
    });
    expect(res.status).toBe(401);
  });

  test("a member with another secret: its calls get 401, and it sees them fail", async () => {
    const foreign = createPeerClient(c.net.fetch, undefined, {
      auth: memberAuth("mem:8081", [OTHER], c.nodes[1]!.config),
    });
    const err = await foreign.write("mem:8080", { to: "mem:8080", records: [wire("f", "x")] }, 1000)
      .catch((e) => e);
    expect(err).toBeInstanceOf(PeerError);
    expect((err as PeerError).status).toBe(401);
    expect(c.nodes[0]!.store.get("f")).toBeUndefined();
    await expect(foreign.status("mem:8080", 1000)).rejects.toThrow(/HTTP 401/);
    await expect(foreign.read("mem:8080", { to: "mem:8080", keys: ["signed"] }, 1000)).rejects
      .toThrow(/HTTP 401/);
    // GET /health is public: neither signed nor checked, with or without a secret.
    expect((await foreign.health("mem:8080", 1000)).status).toBe("UP");
  });

  test("a gossip message must come from the member that signed it", async () => {
    const ping = {
      msg: {
        type: "ping",
        from: "mem:8082",
        fromAddress: "mem:8082",
        seq: 1,
        target: "mem:8080",
        updates: [],
      },
    };
    const r = await send(c.nodes[0]!.app, "POST", "/internal/v1/gossip", ping, peer);
    expect(r.status).toBe(401);
    expect(r.body.error.errorMessage).toContain('gossip from "mem:8082" signed by "mem:8081"');
    const own = { msg: { ...ping.msg, from: "mem:8081", fromAddress: "mem:8081" } };
    expect((await send(c.nodes[0]!.app, "POST", "/internal/v1/gossip", own, peer)).status)
      .toBe(200);
  });
});

describe("forged gossip of every kind the security issue lists is refused (with a secret)", () => {
  let c: MemoryCluster;
  beforeAll(async () => {
    c = await memoryCluster(3, [], Date.now, { secrets: [SECRET] });
  });
  afterAll(() => c.stop());

  const forged = (id: string, role: "orchestrator" | "node", inRing: boolean) => ({
    id,
    address: id,
    role,
    incarnation: 1,
    state: "UP" as const,
    inRing,
  });
  const membersOf = () => c.nodes[0]!.agent.swim.members().map((m) => m.id).sort();

  test("an 'orchestrator' with a low id, UP members in the ring, a push-pull that asks for no reply", async () => {
    const before = membersOf();
    const duty = c.nodes[0]!.agent.swim.dutyHolder();
    // Where a forged push-pull (reply: false) would make the member send its table: a listener
    // that records anything it gets.
    const leaked: string[] = [];
    c.net.servers.set("mem:6666", {
      fetch: (r: Request) => {
        leaked.push(r.url);
        return new Response("{}");
      },
    } as never);
    const ping = {
      msg: {
        type: "ping",
        from: "mem:6666",
        fromAddress: "mem:6666",
        seq: 1,
        target: "mem:8080",
        updates: [
          { ...forged("mem:1000", "orchestrator", false), by: "mem:6666" },
          { ...forged("mem:1001", "node", true), by: "mem:6666" },
        ],
      },
    };
    const pushPull = {
      msg: {
        type: "push-pull",
        from: "mem:6666",
        fromAddress: "mem:6666",
        reply: false,
        members: [forged("mem:1000", "orchestrator", false), forged("mem:1001", "node", true)],
      },
    };
    for (const msg of [ping, pushPull]) {
      // Unsigned, and signed with another cluster's secret.
      const other = memberAuth("mem:6666", [OTHER], c.nodes[0]!.config);
      for (const auth of [undefined, other]) {
        const r = await send(c.nodes[0]!.app, "POST", "/internal/v1/gossip", msg, auth);
        expect(r.status).toBe(401);
      }
    }
    await Bun.sleep(50); // anything the member would send in answer has had its chance
    expect(leaked).toEqual([]);
    expect(membersOf()).toEqual(before);
    expect(c.nodes[0]!.agent.swim.dutyHolder()).toEqual(duty);
  });
});

describe("answers are checked by the caller", () => {
  const config = testConfig(["--role", "node", "--port", "8080", "--orchestrator", "mem:7000"]);
  const net = new MemoryNetwork();
  const auth = memberAuth("mem:8080", [SECRET], config);
  const client = createPeerClient(net.fetch, undefined, { auth });
  const ok = () =>
    new Response(JSON.stringify({ ok: true }), { headers: { "content-type": "application/json" } });

  test("an unsigned answer, one signed with another secret, or one for another request: the call fails", async () => {
    net.servers.set("mem:1", { fetch: () => ok() });
    await expect(client.moveDone("mem:1", { partition: 0, from: "x" }, 1000)).rejects.toThrow(
      /answer not authenticated: answer without x-dkv-auth/,
    );
    const other = memberAuth("mem:1", [OTHER], config);
    net.servers.set("mem:2", {
      fetch: (req) => {
        const nonce = req.headers.get(AUTH_HEADER)!.split(" ")[3]!;
        const body = enc.encode(JSON.stringify({ ok: true }));
        const header = other.signAnswer(200, "POST", "/internal/v1/rebalance/done", nonce, body);
        return new Response(body, { headers: { [AUTH_HEADER]: header } });
      },
    });
    await expect(client.moveDone("mem:2", { partition: 0, from: "x" }, 1000)).rejects.toThrow(
      /answer with a bad signature/,
    );
    // A genuine answer recorded earlier, replayed for a new request.
    const same = memberAuth("mem:3", [SECRET], config);
    let recorded: Response | undefined;
    net.servers.set("mem:3", {
      fetch: (req) => {
        if (recorded !== undefined) return recorded.clone();
        const nonce = req.headers.get(AUTH_HEADER)!.split(" ")[3]!;
        const body = enc.encode(JSON.stringify({ ok: true }));
        const header = same.signAnswer(200, "POST", "/internal/v1/rebalance/done", nonce, body);
        recorded = new Response(body, { headers: { [AUTH_HEADER]: header } });
        return recorded.clone();
      },
    });
    await client.moveDone("mem:3", { partition: 0, from: "x" }, 1000);
    await expect(client.moveDone("mem:3", { partition: 0, from: "x" }, 1000)).rejects.toThrow(
      /signed for another request/,
    );
    expect(auth.refused).toBe(3);
  });

  test("an answer larger than the cap fails the call, with or without a length", async () => {
    const small = createPeerClient(net.fetch, undefined, { answerBytesMax: 1000 });
    const big = JSON.stringify({ ok: true, pad: "x".repeat(2000) });
    // Refused from the declared length (nothing read), and while reading when none is declared.
    net.servers.set("mem:4", {
      fetch: () => new Response(big, { headers: { "content-length": String(big.length) } }),
    });
    await expect(small.moveDone("mem:4", { partition: 0, from: "x" }, 1000)).rejects.toThrow(
      /answer is 20\d\d bytes or more; the limit is 1000/,
    );
    net.servers.set("mem:5", {
      fetch: () =>
        new Response(
          new ReadableStream({
            start(ctl) {
              for (let i = 0; i < 3; i++) ctl.enqueue(enc.encode("x".repeat(600)));
              ctl.close();
            },
          }),
        ),
    });
    await expect(small.moveDone("mem:5", { partition: 0, from: "x" }, 1000)).rejects.toThrow(
      /the limit is 1000/,
    );
  });
});

describe("peers never follow redirects (real HTTP on loopback)", () => {
  test("a 302 to a member that would answer is a failed call; the target is never asked", async () => {
    let targetHits = 0;
    const target = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: () => {
        targetHits++;
        return Response.json({ ok: true });
      },
    });
    const redirector = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch: (req) =>
        Response.redirect(`http://127.0.0.1:${target.port}${new URL(req.url).pathname}`, 307),
    });
    try {
      const client = createPeerClient((url, init) => fetch(url, init));
      await expect(
        client.moveDone(`127.0.0.1:${redirector.port}`, { partition: 0, from: "x" }, 2000),
      ).rejects.toThrow(/HTTP 307|not JSON \(HTTP 307\)/);
      expect(targetHits).toBe(0);
    } finally {
      redirector.stop(true);
      target.stop(true);
    }
  });
});

describe("gossip with secrets (real timers, in memory)", () => {
  const net = new MemoryNetwork();
  const members: (DataNode | Orchestrator)[] = [];
  afterAll(() => members.forEach((m) => m.stop()));

  function start(role: "orchestrator" | "node", port: number, secrets: Uint8Array[]) {
    const args = role === "orchestrator"
      ? ["--role", "orchestrator", "--host", "mem", "--port", String(port)]
      : ["--role", "node", "--host", "mem", "--port", String(port), "--orchestrator", "mem:7000"];
    const config: Config = testConfig(args);
    const auth = memberAuth(config.nodeId, secrets, config);
    const peers = createPeerClient(net.fetch, undefined, { auth });
    const m = role === "orchestrator"
      ? new Orchestrator(config, peers, silentLogger, undefined, auth)
      : new DataNode(config, peers, silentLogger, undefined, auth);
    net.servers.set(config.advertise, m.app);
    members.push(m);
    m.start();
    return m;
  }

  const viewOf = (m: DataNode | Orchestrator) =>
    new Map((m.view?.members ?? []).map((x) => [x.id, x.state]));

  async function until(what: string, check: () => boolean, ms = 5000) {
    const deadline = Date.now() + ms;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await Bun.sleep(20);
    }
  }

  test(
    "a member with another secret never appears in anyone's view; forged gossip is refused",
    async () => {
      const orch = start("orchestrator", 7000, [SECRET]);
      const a = start("node", 8080, [SECRET]);
      const b = start("node", 8081, [SECRET]);
      const stranger = start("node", 8082, [OTHER]);
      const good = [orch, a, b];
      await until("the three to see each other UP", () =>
        good.every((m) => {
          const v = viewOf(m);
          return v.get("mem:7000") === "UP" && v.get("mem:8080") === "UP" &&
            v.get("mem:8081") === "UP";
        }));
      // Well past a few join retries and push-pull rounds (local preset: 100 ms, 1 s).
      await Bun.sleep(1500);
      for (const m of good) expect(viewOf(m).has("mem:8082")).toBe(false);
      expect(stranger.view).toBeUndefined(); // it never even got the cluster settings
      expect(good.some((m) => (m.auth?.refused ?? 0) > 0)).toBe(true);

      // Forged news: node a LEFT at incarnation 2^53 − 1, unsigned and signed by another secret.
      const forged = {
        msg: {
          type: "push-pull",
          from: "mem:8082",
          fromAddress: "mem:8082",
          reply: true,
          members: [{
            id: "mem:8080",
            address: "mem:8080",
            role: "node",
            incarnation: Number.MAX_SAFE_INTEGER,
            state: "LEFT",
            inRing: false,
          }],
        },
        cluster: { replicationFactor: 1, partitions: 7, source: "orchestrator" },
      };
      const unsigned = await send(b.app, "POST", "/internal/v1/gossip", forged);
      expect(unsigned.status).toBe(401);
      const foreign = await send(
        b.app,
        "POST",
        "/internal/v1/gossip",
        forged,
        memberAuth("mem:8082", [OTHER], (b as DataNode).config),
      );
      expect(foreign.status).toBe(401);
      // Even signed with the right secret, an incarnation that far ahead is dropped (part 2).
      const insider = memberAuth("mem:8081", [SECRET], (a as DataNode).config);
      const signed = await send(a.app, "POST", "/internal/v1/gossip", {
        ...forged,
        msg: { ...forged.msg, from: "mem:8081", fromAddress: "mem:8081" },
      }, insider);
      expect(signed.status).toBe(200);
      await Bun.sleep(300);
      for (const m of good) {
        expect(viewOf(m).get("mem:8080")).toBe("UP");
        expect(m.view?.partitions).toBe(256);
      }
      expect((a as DataNode).agent.swim.stats.futureRefused).toBeGreaterThan(0);
    },
    15_000,
  );
});

describe("cluster settings are taken only from the orchestrator, or from authenticated members", () => {
  const net = new MemoryNetwork();
  const node = (args: string[], secrets?: Uint8Array[]) => {
    const config = testConfig(["--role", "node", "--host", "mem", "--port", "8090", ...args]);
    const auth = secrets === undefined ? undefined : memberAuth(config.nodeId, secrets, config);
    const peers = createPeerClient(net.fetch, undefined, auth === undefined ? {} : { auth });
    return new DataNode(config, peers, silentLogger, undefined, auth);
  };
  const member = (id: string, role: "node" | "orchestrator") => ({
    id,
    address: id,
    role,
    incarnation: Date.now(),
    state: "UP" as const,
    inRing: role === "node",
  });
  /** A push-pull answer from `from`, carrying settings that claim to be an orchestrator's. */
  const envelope = (from: string, role: "node" | "orchestrator") => ({
    msg: {
      type: "push-pull" as const,
      from,
      fromAddress: from,
      reply: true,
      members: [member(from, role)],
    },
    cluster: { replicationFactor: 1, partitions: 7, source: "orchestrator" as const },
  });

  test("without a secret: a node relaying 'orchestrator' settings is ignored; the orchestrator is not", () => {
    const starting = node(["--orchestrator", "mem:7000"]);
    starting.agent.receive(envelope("mem:8081", "node"));
    expect(starting.view).toBeUndefined(); // still waiting for settings
    starting.agent.receive(envelope("mem:7000", "orchestrator"));
    expect(starting.view?.partitions).toBe(7);

    const joined = node(["--join", "mem:8081"]); // its own flags: 256 partitions
    joined.agent.receive(envelope("mem:8081", "node"));
    expect(joined.agent.cluster).toMatchObject({ partitions: 256, source: "node" });
    joined.agent.receive(envelope("mem:7000", "orchestrator"));
    expect(joined.agent.cluster).toMatchObject({ partitions: 7, source: "orchestrator" });
    [starting, joined].forEach((n) => n.stop());
  });

  test("with a secret (every message authenticated): relayed settings are taken, as before", () => {
    const joined = node(["--join", "mem:8081"], [SECRET]);
    joined.agent.receive(envelope("mem:8081", "node"));
    expect(joined.agent.cluster).toMatchObject({ partitions: 7, source: "orchestrator" });
    joined.stop();
  });
});

describe("gossip addresses are host:port (validated at the boundary, no secret needed)", () => {
  let c: MemoryCluster;
  beforeAll(async () => {
    c = await memoryCluster(1);
  });
  afterAll(() => c.stop());

  for (const bad of ["evil.com/steal:80", "user@mem:8080", "mem:8080#x", "mem:8080/x", "mem"]) {
    test(`${JSON.stringify(bad)} as a sender, target or member address: 400, nothing learnt`, async () => {
      const base = {
        type: "ping",
        from: "mem:9",
        fromAddress: "mem:9",
        seq: 1,
        target: "mem:8080",
      };
      const member = {
        id: "mem:9",
        address: bad,
        role: "node",
        incarnation: Date.now(),
        state: "UP",
        inRing: true,
        by: "mem:9",
      };
      const bodies = [
        { msg: { ...base, fromAddress: bad, updates: [] } },
        { msg: { ...base, updates: [member] } },
        {
          msg: { ...base, type: "ping-req", targetAddress: bad, timeoutMs: 50, updates: [] },
        },
        {
          msg: {
            type: "push-pull",
            from: "mem:9",
            fromAddress: "mem:9",
            reply: true,
            members: [member],
          },
        },
      ];
      for (const body of bodies) {
        const r = await send(c.nodes[0]!.app, "POST", "/internal/v1/gossip", body);
        expect(r.status).toBe(400);
        expect(r.body.error.errorMessage).toContain("must be host:port");
      }
      expect(c.nodes[0]!.agent.swim.member("mem:9")).toBeUndefined();
    });
  }
});

describe("the middleware signs every answer to a signed request", () => {
  const config = testConfig(["--role", "node", "--port", "8080", "--orchestrator", "mem:7000"]);
  const server = memberAuth("mem:8080", [SECRET], config);
  const caller = memberAuth("mem:8081", [SECRET], config);

  async function call(app: App, path: string, body: unknown) {
    const bytes = enc.encode(JSON.stringify(body));
    const { header, nonce } = caller.signRequest("mem:8080", "POST", path, bytes);
    const res = await app.request(path, {
      method: "POST",
      headers: { [AUTH_HEADER]: header, "content-type": "application/json" },
      body: bytes,
    });
    const answer = new Uint8Array(await res.arrayBuffer());
    const why = caller.verifyAnswer(
      res.status,
      "POST",
      path,
      nonce,
      res.headers.get(AUTH_HEADER),
      answer,
    );
    return { status: res.status, why, text: new TextDecoder().decode(answer) };
  }

  test("errors (400, 404, 409) and answers not made by c.json carry a valid signature", async () => {
    const { Hono } = await import("hono");
    const { createApp } = await import("../../src/http/app.ts");
    const internal = new Hono();
    internal.post("/plain", (c) => c.text("plain text answer"));
    internal.post("/json", (c) => c.json({ ok: true }, 202));
    const c = await memoryCluster(1, [], Date.now, { secrets: [SECRET] });
    try {
      const app = createApp(
        {
          role: "node",
          selfId: "mem:8080",
          advertise: "mem:8080",
          incarnation: () => 1,
          config,
          coordinator: c.nodes[0]!.coordinator,
          peers: c.peers,
          log: silentLogger,
          view: () => undefined,
          ring: () => undefined,
          auth: server,
          sched: realScheduler,
        },
        internal,
      );
      expect(await call(app, "/internal/v1/plain", {})).toEqual({
        status: 200,
        why: undefined,
        text: "plain text answer",
      });
      expect(await call(app, "/internal/v1/json", {})).toMatchObject({
        status: 202,
        why: undefined,
      });
      expect(await call(app, "/internal/v1/nope", {})).toMatchObject({
        status: 404,
        why: undefined,
      });
      const node = c.nodes[0]!.app;
      const bad = await call(node, "/internal/v1/kv/write", { to: "mem:8080", records: "x" });
      expect(bad).toMatchObject({ status: 400, why: undefined });
      const other = await call(node, "/internal/v1/kv/write", { to: "mem:9999", records: [] });
      expect(other).toMatchObject({ status: 409, why: undefined });
    } finally {
      c.stop();
    }
  });
});
