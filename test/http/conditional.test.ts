/**
 * Conditional writes and atomic ops (issue 12) through the HTTP API, in memory (3 nodes, N=3):
 * ETag on reads, If-Match / If-None-Match, 412 with the current record, incr / append, and the
 * bad input each gets as FAILED JSON with the right status, changing nothing.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster;
beforeAll(async () => {
  c = await memoryCluster(3, ["--max-value-bytes", "16"]);
});
afterAll(() => c.stop());

interface Answer {
  status: number;
  etag: string | null;
  // deno-lint-ignore no-explicit-any
  body: any;
}

async function call(
  i: number,
  method: string,
  path: string,
  body?: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const res = await c.nodes[i]!.app.request(path, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
  });
  return { status: res.status, etag: res.headers.get("etag"), body: await res.json() };
}

describe("conditional writes over HTTP", () => {
  test("create-only, If-Match on the ETag, 412 with the current record", async () => {
    const made = await call(0, "PUT", "/kv/lock", "a", { "if-none-match": "*" });
    expect(made.status).toBe(200);
    expect(made.etag).toBe(`"${made.body.version}"`);
    const again = await call(1, "PUT", "/kv/lock", "b", { "if-none-match": "*" });
    expect(again.status).toBe(412);
    expect(again.body.status).toBe("FAILED");
    expect(again.body.current).toMatchObject({ key: "lock", value: "a" });
    const read = await call(2, "GET", "/kv/lock");
    expect(read.etag).toBe(made.etag);
    const swapped = await call(2, "PUT", "/kv/lock", "c", { "if-match": read.etag! });
    expect(swapped.status).toBe(200);
    const stale = await call(0, "PUT", "/kv/lock", "d", { "if-match": read.etag! });
    expect(stale.status).toBe(412);
    expect(stale.body.current.value).toBe("c");
    expect((await call(1, "DELETE", "/kv/lock", undefined, { "if-match": "*" })).status).toBe(200);
    const gone = await call(1, "DELETE", "/kv/lock", undefined, { "if-match": "*" });
    expect(gone.status).toBe(412);
    expect(gone.body.current).toBeNull();
  });

  test("incr and append", async () => {
    expect((await call(0, "POST", "/kv/n?op=incr")).body.value).toBe("1");
    expect((await call(1, "POST", "/kv/n?op=incr&by=-5")).body.value).toBe("-4");
    const word = await call(2, "POST", "/kv/w?op=append", "ab");
    expect(word.body.value).toBe("ab");
    expect((await call(0, "POST", "/kv/w?op=append", "cd")).body.value).toBe("abcd");
    const notInt = await call(1, "POST", "/kv/w?op=incr");
    expect(notInt.status).toBe(409);
    const tooBig = await call(1, "POST", "/kv/w?op=append", "x".repeat(13));
    expect(tooBig.status).toBe(413);
    expect((await call(2, "GET", "/kv/w")).body.value).toBe("abcd");
  });

  test("bad input is a 400 FAILED JSON and writes nothing", async () => {
    const cases: [string, string, Record<string, string>][] = [
      ["PUT", "/kv/bad", { "if-match": "nope" }],
      ["PUT", "/kv/bad", { "if-match": '"1.0@x"', "if-none-match": "*" }],
      ["PUT", "/kv/bad", { "if-none-match": '"1.0@x"' }],
      ["PUT", "/kv/bad?op=incr", {}],
      ["POST", "/kv/bad?op=incr&by=1.5", {}],
      ["POST", "/kv/bad?op=mult", {}],
      ["POST", "/kv/bad?by=2", {}],
      ["POST", "/kv/bad?op=incr&ttl=1s", {}],
      ["PUT", "/kv/bad?consistency=one", { "if-none-match": "*" }],
      ["PUT", "/kv/bad?ttl=keep", { "if-none-match": "*" }],
    ];
    for (const [method, path, headers] of cases) {
      const r = await call(0, method, path, "v", headers);
      expect([method, path, r.status]).toEqual([method, path, 400]);
      expect(r.body.status).toBe("FAILED");
    }
    expect((await call(1, "GET", "/kv/bad")).status).toBe(404);
  });
});
