/**
 * End-to-end: the compiled ./dkv as real processes on loopback — an orchestrator and five nodes.
 * Tests share the cluster and the destructive ones (orchestrator restart, kill -9 of a replica)
 * come last, but none depends on another's keys or state: each also runs alone (`-t`). Everything
 * started is killed in afterAll.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import {
  type Cluster,
  http,
  type Proc,
  restart,
  runCaptured,
  startCluster,
  stopAll,
  waitFor,
} from "../support/cluster.ts";

const N = 3;
let cluster: Cluster;

beforeAll(async () => {
  cluster = await startCluster(5);
}, 60_000);

afterAll(async () => {
  await stopAll();
});

const enc = (key: string) => encodeURIComponent(key);

/** Ids of the nodes whose /kv/all-data holds `key`. */
async function holders(key: string, nodes: readonly Proc[]): Promise<string[]> {
  const out: string[] = [];
  for (const n of nodes) {
    const r = await http("GET", n.address, "/kv/all-data");
    expect(r.status).toBe(200);
    if (Object.hasOwn(r.body, key)) out.push(n.address);
  }
  return out.sort();
}

async function replicaIds(address: string, key: string): Promise<string[]> {
  const r = await http("GET", address, `/all-nodes/${enc(key)}`);
  expect(r.status).toBe(200);
  return (r.body.allNodes as { id: string }[]).map((m) => m.id);
}

describe("a five-node cluster", () => {
  test("every member lists the orchestrator and five nodes", async () => {
    for (const m of cluster.all()) {
      const r = await http("GET", m.address, "/all-nodes");
      expect(r.status).toBe(200);
      const roles = (r.body.allNodes as { role: string; orchestrator: boolean }[]).map((x) =>
        x.role
      );
      expect(roles.filter((x) => x === "node").length).toBe(5);
      expect(roles.filter((x) => x === "orchestrator").length).toBe(1);
      expect(r.body.allNodes[0]).toHaveProperty("ip", "127.0.0.1");
    }
    const h = await http("GET", cluster.nodes[0]!.address, "/health");
    expect(h.status).toBe(200);
    expect(h.body.status).toBe("UP");
  }, 60_000);

  test(
    "the original curl line works; the key reads back from every node and the orchestrator",
    async () => {
      const first = cluster.nodes[0]!;
      const curl = await runCaptured([
        "curl",
        "--silent",
        "--location",
        "--request",
        "POST",
        `${first.address}/kv/best_movie`,
        "--header",
        "Content-Type: text/plain",
        "--data-raw",
        "Lord of the rings",
      ]);
      expect(curl.code).toBe(0);
      const out = JSON.parse(curl.stdout);
      expect(out).toMatchObject({
        status: "SUCCESS",
        key: "best_movie",
        value: "Lord of the rings",
      });
      expect(typeof out.version).toBe("string");
      for (const m of cluster.all()) {
        const r = await http("GET", m.address, "/kv/best_movie");
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({
          status: "SUCCESS",
          key: "best_movie",
          value: "Lord of the rings",
        });
      }
    },
    60_000,
  );

  test(
    "/kv/all-data shows each key on exactly N nodes, the ones /all-nodes/{key} names",
    async () => {
      const keys = Array.from({ length: 30 }, (_, i) => `placement-${i}`);
      keys.push("κλειδί με κενά", "a/b%c", "日本語のキー");
      for (const [i, key] of keys.entries()) {
        const writer = cluster.all()[i % 6]!;
        const r = await http("PUT", writer.address, `/kv/${enc(key)}`, `value-${i}`);
        expect(r.status).toBe(200);
        expect(r.body.key).toBe(key);
      }
      // Writes answer after W=2 acks; the third replica's copy may land a moment later.
      for (const key of keys) {
        const expected = (await replicaIds(cluster.orchestrator.address, key)).sort();
        expect(expected.length).toBe(N);
        expect((await replicaIds(cluster.nodes[3]!.address, key)).sort()).toEqual(expected);
        await waitFor(`${key} on exactly its replicas`, async () => {
          const got = await holders(key, cluster.nodes);
          return JSON.stringify(got) === JSON.stringify(expected);
        }, 30_000);
      }
      expect(await http("GET", cluster.orchestrator.address, "/kv/all-data")).toEqual({
        status: 200,
        body: {},
      });
    },
    60_000,
  );

  test("keys are URL-decoded UTF-8: spaces, non-Latin letters and %2F round-trip", async () => {
    const cases = ["with space", "ключ", "a/b", "emoji 🎬", "50%"];
    for (const key of cases) {
      const put = await http("POST", cluster.nodes[1]!.address, `/kv/${enc(key)}`, `v:${key}`);
      expect(put.status).toBe(200);
      const get = await http("GET", cluster.nodes[4]!.address, `/kv/${enc(key)}`);
      expect(get.status).toBe(200);
      expect(get.body).toMatchObject({ key, value: `v:${key}` });
    }
    // A literal slash names the same key as %2F.
    const lit = await http("GET", cluster.nodes[2]!.address, "/kv/a/b");
    expect(lit.body).toMatchObject({ key: "a/b", value: "v:a/b" });
  }, 60_000);

  test("overwrite, then delete: every node sees the change; a second delete is 404", async () => {
    const key = "overwrite-me";
    const a = cluster.nodes[0]!, b = cluster.nodes[2]!;
    expect((await http("POST", a.address, `/kv/${key}`, "one")).status).toBe(200);
    const second = await http("POST", b.address, `/kv/${key}`, "two");
    expect(second.status).toBe(200);
    for (const m of cluster.all()) {
      const r = await http("GET", m.address, `/kv/${key}`);
      expect(r.body.value).toBe("two");
      expect(r.body.version).toBe(second.body.version);
    }
    const del = await http("DELETE", cluster.nodes[4]!.address, `/kv/${key}`);
    expect(del).toEqual({ status: 200, body: { status: "SUCCESS", key } });
    for (const m of cluster.all()) {
      const r = await http("GET", m.address, `/kv/${key}`);
      expect(r.status).toBe(404);
      expect(r.body.status).toBe("FAILED");
    }
    const again = await http("DELETE", cluster.nodes[1]!.address, `/kv/${key}`);
    expect(again.status).toBe(404);
    await waitFor(
      "the deleted key to leave every /kv/all-data",
      async () => (await holders(key, cluster.nodes)).length === 0,
      30_000,
    );
  }, 60_000);

  test("bad input gets a FAILED JSON body with the right status, and changes nothing", async () => {
    const at = cluster.nodes[3]!.address;
    const cases: [string, string, string | undefined, number][] = [
      ["GET", "/kv/never-written", undefined, 404],
      ["POST", "/kv/", "v", 400], // empty key
      ["POST", "/kv/all-data", "v", 400], // reserved
      ["GET", "/kv/%E0%A4%A", undefined, 400], // broken percent-encoding
      ["POST", `/kv/${"k".repeat(1025)}`, "v", 400], // a write's key over --max-key-bytes (1024)
      // A read's key is bounded only by the largest --max-key-bytes any member may have (65536):
      // a longer key stored by a member with a larger limit must stay readable (issue 16, 17).
      ["GET", `/kv/${"k".repeat(1025)}`, undefined, 404],
      ["GET", `/kv/${"k".repeat(65537)}`, undefined, 400],
      ["GET", "/kv/x?consistency=most", undefined, 400],
      ["POST", "/kv/x?consistency=", "v", 400],
      ["GET", "/no/such/route", undefined, 404],
      ["DELETE", "/kv/never-written", undefined, 404],
    ];
    for (const [method, path, body, status] of cases) {
      const r = await http(method, at, path, body);
      expect({ method, path, status: r.status }).toEqual({ method, path, status });
      expect(r.body.status).toBe("FAILED");
      expect(r.body.error.errorSystemCode).toBe(status);
      expect(typeof r.body.error.errorMessage).toBe("string");
    }
    const big = await http("POST", at, "/kv/too-big", "x".repeat(1024 * 1024 + 1));
    expect(big.status).toBe(413);
    expect(big.body.error.errorMessage).toContain("limit");
    // Bytes that are not UTF-8 are a value like any other since issue 11: base64 in JSON.
    const binary = await http("POST", at, "/kv/not-utf8", new Uint8Array([0x66, 0xff, 0xfe]));
    expect(binary.status).toBe(200);
    expect(binary.body).toMatchObject({ value: "Zv/+", encoding: "base64" });
    expect((await http("GET", at, "/kv/not-utf8")).body.value).toBe("Zv/+");
    for (const key of ["too-big", "x"]) {
      expect((await http("GET", at, `/kv/${key}`)).status).toBe(404);
    }
    // The value limit is exactly the limit: 1 MiB itself is accepted.
    expect((await http("POST", at, "/kv/exactly-max", "y".repeat(1024 * 1024))).status).toBe(200);
  }, 60_000);

  test(
    "a restarted orchestrator rebuilds the whole view from the nodes, without a ring change",
    async () => {
      const sample = ["restart-1", "restart-2", "restart-3", "ключ-restart"];
      for (const k of sample) {
        expect((await http("POST", cluster.nodes[0]!.address, `/kv/${enc(k)}`, `v:${k}`)).status)
          .toBe(200);
      }
      const before = await Promise.all(sample.map((k) => replicaIds(cluster.nodes[0]!.address, k)));
      cluster.orchestrator.kill(9);
      await cluster.orchestrator.exited;
      // Nodes keep serving while it is gone.
      const w = await http(
        "POST",
        cluster.nodes[1]!.address,
        "/kv/while-orchestrator-down",
        "still works",
      );
      expect(w.status).toBe(200);
      expect(
        (await http("GET", cluster.nodes[2]!.address, "/kv/while-orchestrator-down")).body.value,
      )
        .toBe("still works");

      // `restart` returns once the new process, not the old one, answers on the port.
      cluster.orchestrator = await restart(
        cluster.orchestrator,
        `orch-${cluster.orchestrator.port}-restarted`,
      );
      const ids = cluster.nodes.map((n) => n.address);
      await waitFor("the new orchestrator to list all five nodes UP", async () => {
        const r = await http("GET", cluster.orchestrator.address, "/all-nodes");
        const up = (r.body.allNodes as { id: string; role: string; status: string }[])
          .filter((m) => m.role === "node" && m.status === "UP").map((m) => m.id);
        return ids.every((id) => up.includes(id));
      }, 30_000);
      const after = await Promise.all(
        sample.map((k) => replicaIds(cluster.orchestrator.address, k)),
      );
      expect(after).toEqual(before);
      for (const k of sample) {
        expect((await http("GET", cluster.orchestrator.address, `/kv/${enc(k)}`)).body.value)
          .toBe(`v:${k}`);
      }
    },
    60_000,
  );

  test(
    "kill -9 of one replica: reads and quorum writes still succeed from every remaining node",
    async () => {
      const key = "survives-a-crash";
      expect((await http("POST", cluster.nodes[0]!.address, `/kv/${key}`, "durable")).status).toBe(
        200,
      );
      const replicas = await replicaIds(cluster.orchestrator.address, key);
      const victim = cluster.nodes.find((n) => n.address === replicas[0])!;
      victim.kill(9);
      await victim.exited;
      const rest = cluster.all().filter((m) => m !== victim);
      for (const m of rest) {
        const r = await http("GET", m.address, `/kv/${key}`);
        expect({ at: m.address, status: r.status, value: r.body.value }).toEqual({
          at: m.address,
          status: 200,
          value: "durable",
        });
      }
      for (const m of rest) {
        const r = await http("POST", m.address, `/kv/${key}`, `from ${m.address}`);
        expect(r.status).toBe(200);
      }
      // consistency=all cannot be met with a replica gone: 503 saying how many answered.
      await waitFor("the orchestrator to see the victim DOWN", async () => {
        const r = await http("GET", cluster.orchestrator.address, "/all-nodes");
        return (r.body.allNodes as { id: string; status: string }[]).some((m) =>
          m.id === victim.address && m.status === "DOWN"
        );
      }, 30_000);
      const all = await http(
        "POST",
        cluster.nodes.find((n) => n !== victim)!.address,
        `/kv/${key}?consistency=all`,
        "x",
      );
      expect(all.status).toBe(503);
      expect(all.body.error.errorMessage).toMatch(/only 2 of 3 replicas acknowledged; all needs 3/);
    },
    60_000,
  );
});
