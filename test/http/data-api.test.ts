/**
 * Issue 11, the data API, through `app.request()` over the in-memory transport: binary values
 * (raw bytes, base64 JSON, replica wire), TTL (expiry on a test clock, replicated, collected).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Buffer } from "node:buffer";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster;
let nowMs = Date.now();
beforeAll(async () => {
  c = await memoryCluster(3, ["--max-value-bytes", "70000", "--max-ttl", "1h"], () => nowMs);
});
afterAll(() => c.stop());

type App = { request: (p: string, i?: RequestInit) => Response | Promise<Response> };
const app = (i: number): App => c.nodes[i]!.app;

async function call(a: App, method: string, path: string, body?: BodyInit, headers = {}) {
  const res = await a.request(path, { method, body, headers });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, body: JSON.parse(text) };
}

/** Bytes that are not valid UTF-8 (a lone continuation byte and 0xff), with a random middle. */
function binary(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7919 + 13) & 0xff;
  b[0] = 0xff;
  b[1] = 0x80;
  return b;
}

describe("binary values", () => {
  test("any bytes are stored; JSON answers base64 with encoding, ?raw the bytes, ETag the version", async () => {
    const bytes = binary(64 * 1024);
    const put = await call(app(0), "PUT", "/kv/bin", bytes as BodyInit, {
      "content-type": "application/json",
    });
    expect(put.status).toBe(200);
    expect(put.body.encoding).toBe("base64");
    expect(Buffer.from(put.body.value, "base64").equals(Buffer.from(bytes))).toBe(true);
    for (let i = 0; i < 3; i++) {
      const get = await call(app(i), "GET", "/kv/bin?consistency=all");
      expect(get.status).toBe(200);
      expect(get.body).toEqual(put.body);
      const raw = await app(i).request("/kv/bin?raw");
      expect(raw.status).toBe(200);
      expect(raw.headers.get("content-type")).toBe("application/octet-stream");
      expect(raw.headers.get("etag")).toBe(`"${put.body.version}"`);
      expect(Buffer.from(await raw.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
      const accept = await app(i).request("/kv/bin", {
        headers: { accept: "application/octet-stream" },
      });
      expect(Buffer.from(await accept.arrayBuffer()).equals(Buffer.from(bytes))).toBe(true);
    }
    // Every replica holds the very bytes (the peer wire carried them as base64).
    for (const n of c.nodes) {
      const r = n.store.get("bin")!;
      expect(r.value).toBeInstanceOf(Uint8Array);
      expect(Buffer.from(r.value as Uint8Array).equals(Buffer.from(bytes))).toBe(true);
    }
  });

  test("valid UTF-8 stays text (a leading byte-order mark kept), and ?raw answers it as bytes", async () => {
    const text = "\ufeffhéllo ☃ 𝄞";
    const put = await call(app(1), "PUT", "/kv/txt", new TextEncoder().encode(text));
    expect(put.body.value).toBe(text);
    expect(put.body.encoding).toBeUndefined();
    const raw = await app(2).request("/kv/txt?raw=true");
    expect(new Uint8Array(await raw.arrayBuffer())).toEqual(new TextEncoder().encode(text));
    expect(c.nodes[2]!.store.get("txt")!.value).toBe(text);
  });

  test("bad input: ?raw=maybe, a value over the limit, /kv/_batch as a key", async () => {
    const bad = await call(app(0), "GET", "/kv/bin?raw=maybe");
    expect(bad.status).toBe(400);
    expect(bad.body.status).toBe("FAILED");
    const big = await call(app(0), "PUT", "/kv/big", new Uint8Array(70001));
    expect(big.status).toBe(413);
    expect((await call(app(0), "PUT", "/kv/_batch", "x")).status).toBe(400);
  });

  test("a replica refuses a wire record whose base64 is broken (400), storing nothing", async () => {
    const res = await c.peers.write("mem:8081", {
      to: "mem:8081",
      records: [{ k: "w", v: "!!!", e: "b64", t: nowMs, c: 0, n: "mem:8080" }],
    }, 1000).then(() => 200, (e: { status?: number }) => e.status);
    expect(res).toBe(400);
    expect(c.nodes[1]!.store.get("w")).toBeUndefined();
  });
});

describe("ttl", () => {
  test("?ttl sets expiresAt on every replica; reads, all-data and deletes see it gone after", async () => {
    const put = await call(app(0), "PUT", "/kv/session?ttl=30s&consistency=all", "s1");
    expect(put.status).toBe(200);
    const at = nowMs + 30_000;
    expect(put.body.expiresAt).toBe(new Date(at).toISOString());
    for (const n of c.nodes) expect(n.store.get("session")!.expiresAt).toBe(at);
    expect((await call(app(2), "GET", "/kv/session")).body.expiresAt).toBe(
      new Date(at).toISOString(),
    );
    nowMs += 29_999;
    expect((await call(app(1), "GET", "/kv/session")).status).toBe(200);
    nowMs += 1;
    for (let i = 0; i < 3; i++) {
      expect((await call(app(i), "GET", "/kv/session")).status).toBe(404);
      expect((await call(app(i), "GET", "/kv/all-data")).body).not.toHaveProperty("session");
    }
    expect((await call(app(1), "DELETE", "/kv/session")).status).toBe(404);
  });

  test("a write without ttl clears it; ttl=keep keeps it", async () => {
    const first = await call(app(0), "PUT", "/kv/k?ttl=1h", "a");
    expect(first.body.expiresAt).toBeDefined();
    const kept = await call(app(1), "PUT", "/kv/k?ttl=keep", "b");
    expect(kept.body.expiresAt).toBe(first.body.expiresAt);
    const cleared = await call(app(2), "PUT", "/kv/k", "c");
    expect(cleared.body.expiresAt).toBeUndefined();
    expect(c.nodes[0]!.store.get("k")!.expiresAt).toBeUndefined();
  });

  test("bad or out-of-range ttl is a 400 and writes nothing", async () => {
    for (const ttl of ["5", "0s", "-1s", "1.5s", "2w", "2h", "abc", ""]) {
      const r = await call(app(0), "PUT", `/kv/bad-ttl?ttl=${ttl}`, "v");
      expect(r.status).toBe(400);
      expect(r.body.status).toBe("FAILED");
    }
    expect((await call(app(0), "GET", "/kv/bad-ttl")).status).toBe(404);
    expect((await call(app(0), "GET", "/kv/k?ttl=1s")).status).toBe(400);
  });

  test("expired records are collected after the tombstone grace, like tombstones", async () => {
    await call(app(0), "PUT", "/kv/short?ttl=1s&consistency=all", "x");
    const store = c.nodes[0]!.store;
    store.collectTombstones(nowMs + 1000); // the cutoff is now - grace: not yet past the expiry
    expect(store.get("short")).toBeDefined();
    const bytes = store.bytes;
    const expired = store.get("short")!;
    expect(store.collectTombstones(nowMs + 1001)).toBe(1);
    expect(store.get("short")).toBeUndefined();
    // Handed back by anti-entropy from a replica that has not collected it yet: not stored again.
    store.apply(expired);
    expect(store.get("short")).toBeUndefined();
    expect(store.bytes).toBe(bytes - "short".length - 1);
  });
});

describe("POST /kv/_batch", () => {
  const batch = (a: App, ops: unknown[], q = "") =>
    call(a, "POST", `/kv/_batch${q}`, JSON.stringify({ ops }));

  test("1,000 puts then 1,000 gets: one result per op, in order; replica calls coalesced per peer", async () => {
    const calls = new Map<string, number>();
    c.net.drop = (address, path) => {
      calls.set(`${address}${path}`, (calls.get(`${address}${path}`) ?? 0) + 1);
      return false;
    };
    const puts = Array.from({ length: 1000 }, (_, i) => ({
      op: "put",
      key: `b${i}`,
      value: `v${i}`,
    }));
    const put = await batch(app(0), puts);
    expect(put.status).toBe(200);
    expect(put.body.status).toBe("SUCCESS");
    expect(put.body.results).toHaveLength(1000);
    put.body.results.forEach((r: { status: string; key: string; value: string }, i: number) => {
      expect(r).toMatchObject({ status: "SUCCESS", key: `b${i}`, value: `v${i}` });
    });
    // 1,000 writes to each of the 2 other replicas, in a few coalesced messages (--batch-keys);
    // the slower replica's may still be on its way when the quorum answered.
    await new Promise((r) => setTimeout(r, 200));
    const writes = [...calls].filter(([k]) => k.endsWith("/internal/v1/kv/write"));
    expect(writes).toHaveLength(2);
    for (const [, n] of writes) expect(n).toBeLessThanOrEqual(2);
    calls.clear();
    const gets = await batch(app(1), puts.map((p) => ({ op: "get", key: p.key })));
    expect(gets.body.results.map((r: { value: string }) => r.value)).toEqual(
      puts.map((p) => p.value),
    );
    for (const [, n] of calls) expect(n).toBeLessThanOrEqual(2);
    c.net.drop = () => false;
  });

  test("each op answers SUCCESS or FAILED on its own; ops on one key run in order", async () => {
    const bin = Buffer.from([0xff, 0x00, 0x80]).toString("base64");
    const r = await batch(app(2), [
      { op: "put", key: "o1", value: "a", ttl: "1h" },
      { op: "get", key: "o1" },
      { op: "delete", key: "o1" },
      { op: "get", key: "o1" },
      { op: "put", key: "o2", value: bin, encoding: "base64" },
      { op: "put", key: "all-data", value: "x" },
      { op: "put", key: "o3", value: "x", ttl: "forever" },
      { op: "frob", key: "o4" },
      { op: "delete", key: "never-written" },
    ]);
    expect(r.status).toBe(200);
    const st = r.body.results.map((x: { status: string; error?: { errorSystemCode: number } }) =>
      x.status === "SUCCESS" ? 200 : x.error!.errorSystemCode
    );
    expect(st).toEqual([200, 200, 200, 404, 200, 400, 400, 400, 404]);
    expect(r.body.results[0].expiresAt).toBeDefined();
    expect(r.body.results[1].value).toBe("a");
    expect(r.body.results[4]).toMatchObject({ value: bin, encoding: "base64" });
    expect((await call(app(0), "GET", "/kv/o3")).status).toBe(404);
  });

  test("bad batches: not JSON, no ops, too many ops (413), unknown parameter, wrong method", async () => {
    expect((await call(app(0), "POST", "/kv/_batch", "{")).status).toBe(400);
    expect((await batch(app(0), [])).status).toBe(400);
    const many = Array.from({ length: 1001 }, (_, i) => ({ op: "get", key: `m${i}` }));
    const big = await batch(app(0), many);
    expect(big.status).toBe(413);
    expect(big.body.error.errorMessage).toMatch(/--max-batch-ops/);
    expect((await batch(app(0), [{ op: "get", key: "x" }], "?consistancy=all")).status).toBe(400);
    // `_batch` is a reserved key (400), as `all-data`; other methods are a 405.
    expect((await call(app(0), "GET", "/kv/_batch")).status).toBe(400);
    const patch = await call(app(0), "PATCH", "/kv/_batch");
    expect(patch.status).toBe(405);
    expect(patch.headers.get("allow")).toBe("POST");
  });
});

describe("GET /kv?prefix= (listing)", () => {
  const keys = Array.from({ length: 250 }, (_, i) => `list:${String(i).padStart(3, "0")}`);
  beforeAll(async () => {
    const ops = keys.map((key) => ({ op: "put", key, value: `v-${key}` }));
    ops.push({ op: "put", key: "lisp", value: "not under list:" });
    await call(app(0), "POST", "/kv/_batch?consistency=all", JSON.stringify({ ops }));
  });

  async function all(a: App, query: string) {
    const got: { key: string; value?: string }[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const c2: string = cursor === null ? "" : `&cursor=${cursor}`;
      const r = await call(a, "GET", `/kv?${query}${c2}`);
      expect(r.status).toBe(200);
      got.push(...r.body.items);
      cursor = r.body.cursor;
      pages++;
    } while (cursor !== null);
    return { got, pages };
  }

  test("pages of 100 return each live key under the prefix once, in order; cursor null at the end", async () => {
    const { got, pages } = await all(app(1), "prefix=list:&limit=100");
    expect(got.map((x) => x.key)).toEqual(keys);
    expect(got[7]).toMatchObject({ key: keys[7], value: `v-${keys[7]}` });
    expect(pages).toBe(3);
    const first = await call(app(2), "GET", "/kv?prefix=list:");
    expect(first.body.items).toHaveLength(100); // the default limit
    const ko = await call(app(2), "GET", "/kv?prefix=list:0&keysOnly=true&limit=5");
    expect(ko.body.items[0]).toEqual({ key: "list:000", version: expect.any(String) });
    const count = await call(c.orchestrator.app, "GET", "/kv?prefix=list:&count=true");
    expect(count.body).toEqual({ status: "SUCCESS", count: 250 });
  });

  test("deleted and expired keys are left out; the orchestrator lists too", async () => {
    await call(app(0), "DELETE", "/kv/list:010?consistency=all");
    await call(app(0), "PUT", "/kv/list:011?ttl=1s&consistency=all", "short");
    nowMs += 1000;
    const { got } = await all(c.orchestrator.app, "prefix=list:01&limit=3");
    expect(got.map((x) => x.key)).toEqual(keys.slice(12, 20));
    // Put them back for the other tests.
    await call(app(0), "PUT", "/kv/list:010", "v-list:010");
    await call(app(0), "PUT", "/kv/list:011", "v-list:011");
  });

  test("one node down: quorum still lists everything; all is a 503", async () => {
    c.net.down.add("mem:8082");
    try {
      const { got } = await all(app(0), "prefix=list:&limit=100");
      expect(got).toHaveLength(250);
      const r = await call(app(0), "GET", "/kv?prefix=list:&consistency=all");
      expect(r.status).toBe(503);
      expect(r.body.status).toBe("FAILED");
    } finally {
      c.net.down.delete("mem:8082");
    }
  });

  test("bad listings are a 400", async () => {
    for (
      const q of [
        "",
        "?prefix=a&limit=0",
        "?prefix=a&limit=1001",
        "?prefix=a&limit=x",
        "?prefix=a&cursor=!!",
        "?prefix=a&cursor=AAAA=",
        "?prefix=a&keysOnly=maybe",
        "?prefix=a&sort=desc",
      ]
    ) {
      const r = await call(app(0), "GET", `/kv${q}`);
      expect(r.status).toBe(400);
      expect(r.body.status).toBe("FAILED");
    }
  });
});

/** Server-Sent Events from a response, one at a time. */
class Events {
  #buf = "";
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new TextDecoder();
  constructor(res: Response) {
    this.#reader = res.body!.getReader();
  }
  async next(): Promise<{ event: string; id?: string; data: string }> {
    for (;;) {
      const end = this.#buf.indexOf("\n\n");
      if (end >= 0) {
        const block = this.#buf.slice(0, end);
        this.#buf = this.#buf.slice(end + 2);
        const fields: Record<string, string> = {};
        for (const line of block.split("\n")) {
          if (line.startsWith(":") || line === "") continue;
          const i = line.indexOf(":");
          fields[line.slice(0, i)] = line.slice(i + 1).trimStart();
        }
        if (fields.event === undefined && fields.data === undefined) continue; // comments, retry
        return { event: fields.event ?? "message", id: fields.id, data: fields.data ?? "" };
      }
      const { done, value } = await this.#reader.read();
      if (done) throw new Error("stream ended");
      this.#buf += this.#decoder.decode(value, { stream: true });
    }
  }
  close(): Promise<void> {
    return this.#reader.cancel();
  }
}

describe("watches (SSE)", () => {
  const tick = () => new Promise((r) => setTimeout(r, 50));

  test("a prefix watch sees writes made through other members once each, in order; resumes with Last-Event-ID", async () => {
    const res = await app(0).request("/kv?prefix=w:&watch=true");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    const ev = new Events(res);
    await tick(); // the pollers start from each node's current entry
    // The clock moves on between writes: a resume compares versions (HLC), which follow the
    // clock across coordinators.
    for (let i = 0; i < 20; i++) {
      nowMs += 1;
      await call(app(1 + (i % 2)), "PUT", `/kv/w:${i}`, `x${i}`);
    }
    nowMs += 1;
    await call(app(2), "PUT", "/kv/other", "not watched");
    nowMs += 1;
    await call(app(1), "DELETE", "/kv/w:3");
    const seen: { event: string; id?: string; data: string }[] = [];
    for (let i = 0; i < 21; i++) seen.push(await ev.next());
    expect(seen.slice(0, 20).map((e) => JSON.parse(e.data).key)).toEqual(
      Array.from({ length: 20 }, (_, i) => `w:${i}`),
    );
    expect(seen.slice(0, 20).every((e) => e.event === "put")).toBe(true);
    expect(seen[20]).toMatchObject({ event: "delete" });
    expect(JSON.parse(seen[5]!.data)).toMatchObject({ key: "w:5", value: "x5" });
    await ev.close();
    // Writes while disconnected, then a resume from the 10th event: every key changed since.
    nowMs += 1;
    await call(app(1), "PUT", "/kv/w:25", "late");
    const again = await app(2).request("/kv?prefix=w:&watch=true", {
      headers: { "last-event-id": seen[9]!.id! },
    });
    const ev2 = new Events(again);
    const keys: string[] = [];
    for (let i = 0; i < 12; i++) keys.push(JSON.parse((await ev2.next()).data).key);
    // w:10..w:19 and w:3 (deleted) and w:25, each once (catch-up in key order).
    expect(keys.sort()).toEqual(
      [
        "w:10",
        "w:11",
        "w:12",
        "w:13",
        "w:14",
        "w:15",
        "w:16",
        "w:17",
        "w:18",
        "w:19",
        "w:25",
        "w:3",
      ],
    );
    await ev2.close();
  });

  test("writes made one after another come in that order even when the replicas that logged the first answer late", async () => {
    const res = await app(0).request("/kv?prefix=ord:&watch=true");
    const ev = new Events(res);
    await tick(); // the pollers start
    // A reaches mem:8080 and mem:8081 only (a quorum; no copy or hint of it reaches mem:8082 while
    // the test runs); mem:8082, which then takes B, answers its polls at once, the other two 400
    // ms late: B is heard of first, A only after the window.
    c.net.drop = (address, path) =>
      address === "mem:8082" && (path === "/internal/v1/kv/write" || path === "/internal/v1/hints");
    c.net.delayMs = (address, path) =>
      path === "/internal/v1/watch/poll" && address !== "mem:8082" ? 400 : 0;
    try {
      nowMs += 1;
      expect((await call(app(1), "PUT", "/kv/ord:b-first", "A")).status).toBe(200);
      nowMs += 1;
      expect((await call(app(2), "PUT", "/kv/ord:a-second", "B")).status).toBe(200);
      const keys = [JSON.parse((await ev.next()).data).key, JSON.parse((await ev.next()).data).key];
      expect(keys).toEqual(["ord:b-first", "ord:a-second"]);
    } finally {
      c.net.drop = () => false;
      c.net.delayMs = () => 0;
      await ev.close();
    }
  });

  test("a key watch through the orchestrator keeps working while a replica is down", async () => {
    const res = await c.orchestrator.app.request("/kv/wk?watch=true");
    const ev = new Events(res);
    await tick();
    c.net.down.add("mem:8081");
    try {
      for (let i = 0; i < 5; i++) await call(app(i % 2 === 0 ? 0 : 2), "PUT", "/kv/wk", `v${i}`);
      for (let i = 0; i < 5; i++) {
        const e = await ev.next();
        expect(JSON.parse(e.data).value).toBe(`v${i}`);
      }
    } finally {
      c.net.down.delete("mem:8081");
      await ev.close();
    }
  });

  test("bad watches: a reserved key, no prefix=, a bad Last-Event-ID; more than --max-watchers is a 503", async () => {
    expect((await call(app(0), "GET", "/kv/all-data?watch=true")).status).toBe(400);
    expect((await call(app(0), "GET", "/kv?watch=true")).status).toBe(400);
    const bad = await app(0).request("/kv?prefix=a&watch=true", {
      headers: { "last-event-id": "nonsense" },
    });
    expect(bad.status).toBe(400);
    expect((await call(app(0), "GET", "/kv/x?since=1.0@a")).status).toBe(400);
  });
});

describe("watch limits", () => {
  test("past --max-watchers a 503; a watcher that does not read gets overflow and is closed", async () => {
    const small = await memoryCluster(3, ["--max-watchers", "1", "--watch-buffer-bytes", "2048"]);
    try {
      const a = small.nodes[0]!.app;
      const res = await a.request("/kv?prefix=o:&watch=true");
      expect(res.status).toBe(200);
      const second = await a.request("/kv?prefix=o:&watch=true");
      expect(second.status).toBe(503);
      expect((await second.json()).error.errorMessage).toMatch(/--max-watchers/);
      await new Promise((r) => setTimeout(r, 50));
      const value = "x".repeat(200);
      for (let i = 0; i < 30; i++) {
        await small.nodes[1]!.app.request(`/kv/o:${i}`, { method: "PUT", body: value });
      }
      const ev = new Events(res);
      const kinds: string[] = [];
      try {
        for (;;) kinds.push((await ev.next()).event);
      } catch {
        // the stream ended after the overflow
      }
      expect(kinds.at(-1)).toBe("overflow");
      expect(kinds.length).toBeLessThan(31);
      // The closed watch no longer counts.
      const third = await a.request("/kv?prefix=o:&watch=true");
      expect(third.status).toBe(200);
      await third.body!.cancel();
    } finally {
      small.stop();
    }
  });
});
