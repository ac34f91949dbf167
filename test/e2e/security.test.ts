/**
 * The cluster secret with real processes (issue 9, parts 1 and 2): an orchestrator and three
 * nodes started with --cluster-secret-file (a secret written to a temporary file at run time).
 * Unsigned and replayed internal calls are a 401 that changes nothing; a member started with
 * another secret never appears UP anywhere; forged gossip is refused. Everything started is
 * killed in afterAll.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AUTH_HEADER, ClusterAuth } from "../../src/security/cluster-auth.ts";
import {
  type Cluster,
  freePort,
  http,
  nodeStates,
  type Proc,
  startCluster,
  startNode,
  stopAll,
  waitFor,
} from "../support/cluster.ts";

const dir = mkdtempSync(join(tmpdir(), "dkv-security-"));
const secret = randomBytes(32).toString("hex");
const otherSecret = randomBytes(32).toString("hex");
const secretFile = join(dir, "cluster.secret");
const otherFile = join(dir, "other.secret");
writeFileSync(secretFile, `${secret}\n`, { mode: 0o600 });
writeFileSync(otherFile, `${otherSecret}\n`, { mode: 0o600 });

let c: Cluster;
const stranger: Proc[] = [];

beforeAll(async () => {
  const args = ["--cluster-secret-file", secretFile];
  c = await startCluster(3, { nodeArgs: args, orchArgs: args });
}, 60_000);

afterAll(async () => {
  await stopAll();
  rmSync(dir, { recursive: true, force: true });
});

const enc = new TextEncoder();
/** A signer holding `secretText`, speaking as member `id` (the test process poses as a peer). */
const signer = (id: string, secretText: string) =>
  new ClusterAuth([enc.encode(secretText)], {
    selfId: id,
    windowMs: 60_000,
    now: Date.now,
    random: Math.random,
    warn: () => {},
  });

async function post(address: string, path: string, body: unknown, auth?: ClusterAuth) {
  const bytes = enc.encode(JSON.stringify(body));
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (auth) headers[AUTH_HEADER] = auth.signRequest(address, "POST", path, bytes).header;
  return await http("POST", address, path, bytes, headers);
}

async function refusedOn(address: string): Promise<number> {
  const s = await http("GET", address, "/cluster/status");
  return s.body.authRefused as number;
}

const record = (k: string, v: string, node: string) => ({ k, v, t: Date.now(), c: 0, n: node });

describe("cluster secret (real processes)", () => {
  test("the cluster works signed: a write on one node is read on another and via the orchestrator", async () => {
    const put = await http("POST", c.nodes[0]!.address, "/kv/sec-a", "signed");
    expect(put.status).toBe(200);
    expect((await http("GET", c.nodes[2]!.address, "/kv/sec-a")).body.value).toBe("signed");
    expect((await http("GET", c.orchestrator.address, "/kv/sec-a")).body.value).toBe("signed");
    const status = await http("GET", c.orchestrator.address, "/cluster/status");
    for (const m of status.body.members) expect(m.error).toBeUndefined();
  });

  test("an unsigned internal write: 401 FAILED, nothing stored, counted and logged", async () => {
    const node = c.nodes[0]!;
    const before = await refusedOn(node.address);
    const r = await post(node.address, "/internal/v1/kv/write", {
      to: node.address,
      records: [record("sec-unsigned", "evil", node.address)],
    });
    expect(r.status).toBe(401);
    expect(r.body).toEqual({
      status: "FAILED",
      error: { errorMessage: expect.stringContaining("not authenticated"), errorSystemCode: 401 },
    });
    expect((await http("GET", node.address, "/kv/all-data")).body).not.toHaveProperty(
      "sec-unsigned",
    );
    expect((await http("GET", node.address, "/kv/sec-unsigned?consistency=all")).status).toBe(404);
    expect(await refusedOn(node.address)).toBe(before + 1);
    await waitFor(
      "the refusal in the node's log",
      () =>
        readFileSync(node.logPath, "utf8").includes(
          "cluster auth: refused: POST /internal/v1/kv/write",
        ),
    );
  });

  test("a replayed signed call: the first is taken, the same bytes again are a 401", async () => {
    const node = c.nodes[0]!;
    const peer = signer(c.nodes[1]!.address, secret);
    const path = "/internal/v1/kv/write";
    const bytes = enc.encode(JSON.stringify({
      to: node.address,
      records: [record("sec-replay", "once", c.nodes[1]!.address)],
    }));
    const headers = {
      "content-type": "application/json",
      [AUTH_HEADER]: peer.signRequest(node.address, "POST", path, bytes).header,
    };
    const first = await http("POST", node.address, path, bytes, headers);
    expect(first.status).toBe(200);
    expect((await http("GET", node.address, "/kv/all-data")).body["sec-replay"]).toBe("once");
    const before = await refusedOn(node.address);
    const again = await http("POST", node.address, path, bytes, headers);
    expect(again.status).toBe(401);
    expect(again.body.error.errorMessage).toContain("replayed request");
    expect(await refusedOn(node.address)).toBe(before + 1);
  });

  test("a member started with another secret never appears UP in anyone's /all-nodes", async () => {
    const port = freePort();
    stranger.push(
      startNode(port, c.orchestrator.port, [
        "--join",
        c.nodes[1]!.address,
        "--cluster-secret-file",
        otherFile,
      ], `stranger-${port}`),
    );
    const id = `127.0.0.1:${port}`;
    await waitFor(
      "the stranger to serve",
      async () => (await http("GET", id, "/health")).status === 200,
    );
    // Watch for 3 s: its join attempts (every probe period) are all refused.
    const deadline = Date.now() + 3000;
    while (Date.now() < deadline) {
      for (const m of c.all()) expect((await nodeStates(m.address)).get(id)).toBeUndefined();
      await Bun.sleep(200);
    }
    // It knows nobody either, and has no cluster view.
    expect([...(await nodeStates(id)).keys()]).toEqual([id]);
    expect((await http("POST", id, "/kv/x", "y")).status).toBe(503);
    expect(await refusedOn(c.orchestrator.address)).toBeGreaterThan(0);
    stranger[0]!.kill(9);
    await stranger[0]!.exited;
  }, 20_000);

  test("forged gossip (node LEFT at incarnation 2^53 - 1), unsigned or under another secret: 401, nothing changes", async () => {
    const victim = c.nodes[2]!.address;
    const forged = (from: string) => ({
      msg: {
        type: "push-pull",
        from,
        fromAddress: from,
        reply: true,
        members: [{
          id: victim,
          address: victim,
          role: "node",
          incarnation: Number.MAX_SAFE_INTEGER,
          state: "LEFT",
          inRing: false,
        }],
      },
      cluster: { replicationFactor: 1, partitions: 7, source: "orchestrator" },
    });
    const forger = "127.0.0.1:1";
    for (const m of c.all()) {
      const unsigned = await post(m.address, "/internal/v1/gossip", forged(forger));
      expect([m.name, unsigned.status]).toEqual([m.name, 401]);
      const foreign = await post(
        m.address,
        "/internal/v1/gossip",
        forged(forger),
        signer(forger, otherSecret),
      );
      expect([m.name, foreign.status]).toEqual([m.name, 401]);
      expect(foreign.body.error.errorMessage).toContain("bad signature");
    }
    // Even signed with the cluster's own secret, an incarnation that far ahead is dropped.
    const insider = signer(forger, secret);
    const signed = await post(c.nodes[0]!.address, "/internal/v1/gossip", forged(forger), insider);
    expect(signed.status).toBe(200);
    await Bun.sleep(1000);
    for (const m of c.all()) {
      expect([m.name, (await nodeStates(m.address)).get(victim)]).toEqual([m.name, "UP"]);
      expect((await http("GET", m.address, "/cluster/status")).body.partitions).toBe(256);
    }
  });
});
