/**
 * Issue 11's acceptance with real processes: orchestrator + 3 nodes, N=3. Binary values through
 * ?raw and base64 JSON, surviving a kill -9 and restart of a replica and a move to a joining
 * node; a 1 s ttl gone from every member's reads and listings, then collected; a listing of
 * 5,000 keys in pages of 100 while a node joins; a batch of 1,000 puts then 1,000 gets; a watch
 * that sees 100 writes made through other members, resumes with Last-Event-ID, and keeps working
 * through the kill -9 of a replica. Every process is killed in afterAll.
 */
import { afterAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import {
  allUp,
  type Cluster,
  http,
  launch,
  type Proc,
  restart,
  servesQuorum,
  startCluster,
  startNode,
  stopAll,
  waitFor,
} from "../support/cluster.ts";
import { addrs, own as ownAll } from "../support/replicas.ts";

/** A node's own copies, a few keys a call (64 KiB values fill an internal answer quickly). */
async function own(n: Proc, keys: readonly string[]) {
  const out: Awaited<ReturnType<typeof ownAll>> = {};
  for (let i = 0; i < keys.length; i += 8) {
    Object.assign(out, await ownAll(n, keys.slice(i, i + 8)));
  }
  return out;
}

let c: Cluster;
afterAll(stopAll);

const ARGS = ["--tombstone-grace", "2s", "--anti-entropy-interval", "1s"];

async function raw(
  address: string,
  key: string,
): Promise<{ status: number; bytes: Buffer; etag: string | null }> {
  const res = await fetch(`http://${address}/kv/${key}?raw`, { signal: AbortSignal.timeout(5000) });
  return {
    status: res.status,
    bytes: Buffer.from(await res.arrayBuffer()),
    etag: res.headers.get("etag"),
  };
}

/** A random value that is not valid UTF-8 (0xff never is). */
function binary(n: number): Buffer {
  const b = randomBytes(n);
  b[0] = 0xff;
  return b;
}

async function batch(address: string, ops: unknown[]) {
  return await http("POST", address, "/kv/_batch", JSON.stringify({ ops }), undefined, 60_000);
}

/** Server-Sent Events of one watch: each event, as it arrives. */
class Watch {
  readonly events: { event: string; id: string; data: { key: string; value?: string } }[] = [];
  readonly #abort = new AbortController();
  ended = false;
  constructor(readonly url: string, lastEventId?: string) {
    void this.#run(lastEventId);
  }
  async #run(lastEventId?: string): Promise<void> {
    try {
      const res = await fetch(this.url, {
        signal: this.#abort.signal,
        headers: lastEventId ? { "last-event-id": lastEventId } : {},
      });
      const reader = res.body!.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        for (let end = buf.indexOf("\n\n"); end >= 0; end = buf.indexOf("\n\n")) {
          const f: Record<string, string> = {};
          for (const line of buf.slice(0, end).split("\n")) {
            if (line.startsWith(":")) continue;
            const i = line.indexOf(":");
            if (i > 0) f[line.slice(0, i)] = line.slice(i + 1).trimStart();
          }
          buf = buf.slice(end + 2);
          if (f.event) {
            this.events.push({ event: f.event, id: f.id ?? "", data: JSON.parse(f.data ?? "{}") });
          }
        }
      }
    } catch {
      // aborted
    }
    this.ended = true;
  }
  close(): void {
    this.#abort.abort();
  }
}

describe("data API with real processes (3 nodes, N=3)", () => {
  test("start", async () => {
    c = await startCluster(3, { nodeArgs: ARGS });
  });

  test(
    "a 64 KiB binary value round-trips through ?raw and base64 JSON, survives kill -9 and restart of a replica, and moves to a joining node",
    async () => {
      const [a, b, victim] = c.nodes as [Proc, Proc, Proc];
      const values = new Map<string, Buffer>();
      for (let i = 0; i < 24; i++) values.set(`bin-${i}`, binary(64 * 1024));
      for (const [k, v] of values) {
        // A member may still refuse `all` for a moment after start-up (settling): ask again.
        const put = await waitFor(`PUT ${k} at all`, async () => {
          const r = await http("PUT", a.address, `/kv/${k}?consistency=all`, new Uint8Array(v));
          return r.status === 200 && r;
        }, 30_000);
        expect(put.body.encoding).toBe("base64");
      }
      const [k0, v0] = [...values][0]!;
      for (const m of c.all()) {
        const r = await raw(m.address, k0);
        expect(r.status).toBe(200);
        expect(r.bytes.equals(v0)).toBe(true);
        const j = await http("GET", m.address, `/kv/${k0}`);
        expect(j.body.encoding).toBe("base64");
        expect(Buffer.from(j.body.value, "base64").equals(v0)).toBe(true);
        expect(r.etag).toBe(`"${j.body.version}"`);
      }
      // kill -9 and restart: the replica comes back empty; repair (read repair and anti-entropy)
      // brings every value back, byte for byte.
      const back = await restart(victim);
      c.nodes[2] = back;
      await waitFor("the restarted replica to hold every binary value again", async () => {
        for (const k of values.keys()) await http("GET", b.address, `/kv/${k}?consistency=all`);
        const copy = await own(back, [...values.keys()]);
        return [...values].every(([k, v]) => copy[k]?.value === `base64:${v.toString("base64")}`);
      }, 60_000);
      // A fourth node joins: the partitions it now owns move to it, binary values included.
      const joined = await launch((port) => startNode(port, c.orchestrator.port, ARGS));
      c.nodes.push(joined);
      const mine = async () => {
        const out: string[] = [];
        for (const k of values.keys()) {
          const r = await http("GET", joined.address, `/all-nodes/${k}`);
          if (r.body.allNodes.some((m: { id: string }) => m.id === joined.address)) out.push(k);
        }
        return out;
      };
      await waitFor(
        "the joining node to own some of the keys",
        async () => (await mine()).length > 0,
        60_000,
      );
      await waitFor("the joining node to hold the values it owns", async () => {
        const keys = await mine();
        const copy = await own(joined, keys);
        return keys.length > 0 &&
          keys.every((k) => copy[k]?.value === `base64:${values.get(k)!.toString("base64")}`);
      }, 60_000);
      // Let membership settle after the join before the next tests write at quorum and all.
      for (const m of c.all()) {
        await waitFor(
          `${m.name} to list 4 nodes UP`,
          () => allUp(m.address, addrs(c.nodes)),
          30_000,
        );
        await servesQuorum(m);
      }
      await waitFor(
        "a write at all to succeed",
        async () =>
          (await http("PUT", c.nodes[0]!.address, "/kv/settled?consistency=all", "x")).status ===
            200,
        30_000,
      );
      const some = (await mine())[0]!;
      expect((await raw(joined.address, some)).bytes.equals(values.get(some)!)).toBe(true);
    },
    180_000,
  );

  test(
    "a 1 s ttl: gone from every member's reads and listings once it ran out, then collected",
    async () => {
      const put = await http(
        "PUT",
        c.nodes[0]!.address,
        "/kv/ttl:a?ttl=1s&consistency=all",
        "soon gone",
      );
      expect(put.status).toBe(200);
      const expiresAt = Date.parse(put.body.expiresAt);
      const live = await http("GET", c.nodes[1]!.address, "/kv?prefix=ttl:");
      expect(live.body.items.map((i: { key: string }) => i.key)).toEqual(["ttl:a"]);
      const start = Date.now();
      await waitFor("every member to read it as absent", async () => {
        for (const m of c.all()) {
          if (
            (await http("GET", m.address, "/kv/ttl:a?consistency=one")).status !== 404
          ) return false;
          if (
            (await http("GET", m.address, "/kv?prefix=ttl:")).body.items.length !== 0
          ) return false;
        }
        return true;
      }, 30_000);
      console.log(
        `ttl: absent everywhere ${Date.now() - expiresAt} ms after expiresAt (${
          Date.now() - start
        } ms after the write)`,
      );
      // Collected after the tombstone grace (2 s here): no replica holds the record any more.
      await waitFor("every node to collect it", async () => {
        for (const n of c.nodes) if ((await own(n, ["ttl:a"]))["ttl:a"] !== null) return false;
        return true;
      }, 30_000);
    },
    60_000,
  );

  test("a batch of 1,000 puts then a batch of 1,000 gets", async () => {
    const ops = Array.from(
      { length: 1000 },
      (_, i) => ({ op: "put", key: `bt:${i}`, value: `value ${i}` }),
    );
    const put = await batch(c.nodes[0]!.address, ops);
    expect(put.status).toBe(200);
    const failedOps = put.body.results.filter((r: { status: string }) => r.status !== "SUCCESS");
    expect(failedOps.slice(0, 1)).toEqual([]);
    expect(put.body.results.filter((r: { status: string }) => r.status === "SUCCESS")).toHaveLength(
      1000,
    );
    const get = await batch(c.orchestrator.address, ops.map((o) => ({ op: "get", key: o.key })));
    expect(get.body.results.map((r: { value: string }) => r.value)).toEqual(
      ops.map((o) => o.value),
    );
  }, 120_000);

  test(
    "a listing of 5,000 keys in pages of 100 returns each exactly once, in order, while a node joins",
    async () => {
      const keys = Array.from({ length: 5000 }, (_, i) => `ls:${String(i).padStart(5, "0")}`);
      for (let i = 0; i < keys.length; i += 1000) {
        const r = await batch(
          c.nodes[1]!.address,
          keys.slice(i, i + 1000).map((key) => ({ op: "put", key, value: key })),
        );
        expect(r.status).toBe(200);
      }
      let joined: Proc | undefined;
      let beforeJoin = 0;
      const joining = launch((port) => startNode(port, c.orchestrator.port, ARGS)).then((p) => {
        joined = p;
        return p;
      });
      const got: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      let retries = 0;
      const trace: string[] = [];
      const members = c.all();
      for (;;) {
        const q: string = cursor === null ? "" : `&cursor=${cursor}`;
        const at = members[pages % members.length]!.address;
        const r = await http(
          "GET",
          at,
          `/kv?prefix=ls:&limit=100${q}`,
          undefined,
          undefined,
          30_000,
        );
        if (r.status === 503 && retries++ < 100) {
          // Settling after the join (quorum refused for about a second): ask again shortly.
          await Bun.sleep(50);
          continue;
        }
        expect(r.status).toBe(200);
        got.push(...r.body.items.map((i: { key: string }) => i.key));
        trace.push(`${at} ${r.body.items.length} ${r.body.items.at(-1)?.key} ${r.body.cursor}`);
        cursor = r.body.cursor;
        pages++;
        if (joined === undefined) beforeJoin++;
        if (cursor === null) break;
        await Bun.sleep(60); // spread the pages over the join and the moves after it
      }
      c.nodes.push(await joining);
      console.log(`listing: ${pages} pages, ${beforeJoin} before the joining node was ready`);
      if (got.length !== keys.length) console.log(trace.join("\n"));
      expect(got).toEqual(keys);
      const count = await http(
        "GET",
        c.orchestrator.address,
        "/kv?prefix=ls:&count=true",
        undefined,
        undefined,
        60_000,
      );
      expect(count.body.count).toBe(5000);
    },
    180_000,
  );

  test(
    "a watch sees 100 writes through other members once each, in order; resumes with Last-Event-ID; survives kill -9 of a replica",
    async () => {
      const [watched, ...others] = c.nodes as Proc[];
      const w = new Watch(`http://${watched!.address}/kv?prefix=wt:&watch=true`);
      await Bun.sleep(500); // the pollers start
      const written: string[] = [];
      for (let i = 0; i < 100; i++) {
        const key = `wt:${String(i).padStart(3, "0")}`;
        const r = await http("PUT", others[i % others.length]!.address, `/kv/${key}`, `v${i}`);
        expect(r.status).toBe(200);
        written.push(key);
        // Each write starts after the one before was acknowledged: the watch delivers them in
        // that order (src/http/watch.ts, delivery rounds). 2 ms apart, so their versions differ
        // in wall-clock ms whichever member coordinates.
        await Bun.sleep(2);
      }
      await waitFor("100 events", () => w.events.length >= 100, 30_000);
      await Bun.sleep(300);
      // Each write exactly once, in the order they were made.
      const delivered = w.events.map((e) => e.data.key);
      expect(delivered).toEqual(written);
      // Disconnect; 50 more writes meanwhile; resume from the last id seen: no gap.
      const lastId = w.events[99]!.id;
      w.close();
      const more: string[] = [];
      for (let i = 100; i < 150; i++) {
        const key = `wt:${String(i).padStart(3, "0")}`;
        const r = await http("PUT", others[i % others.length]!.address, `/kv/${key}`, `v${i}`);
        expect(r.status).toBe(200);
        more.push(key);
      }
      const w2 = new Watch(`http://${watched!.address}/kv?prefix=wt:&watch=true`, lastId);
      await waitFor("the 50 writes made while disconnected", () => w2.events.length >= 50, 30_000);
      // kill -9 of a replica while the watch runs: writes through the others still arrive.
      const victim = others[0]!;
      victim.kill(9);
      await victim.exited;
      for (let i = 150; i < 160; i++) {
        const key = `wt:${String(i).padStart(3, "0")}`;
        expect((await http("PUT", others[1]!.address, `/kv/${key}`, `v${i}`)).status).toBe(200);
        more.push(key);
      }
      await waitFor("60 events", () => w2.events.length >= 60, 30_000);
      await Bun.sleep(300);
      w2.close();
      expect(w2.events.map((e) => e.data.key).sort()).toEqual(more);
      expect(w2.events.slice(50).map((e) => e.data.key)).toEqual(more.slice(50));
    },
    180_000,
  );
});
