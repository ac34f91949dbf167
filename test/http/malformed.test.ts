/**
 * Regressions from the fuzzer (issue 9, part 7), in memory: requests the runtime hands over with
 * a URL built from a malformed Host header, and bodies the runtime aborted. Each was a 500 or an
 * "unhandled error" log line before; each is now an ordinary answer.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { asDkvError, DkvError } from "../../src/http/errors.ts";
import { consistencyParam } from "../../src/http/kv-handler.ts";
import { rawPath } from "../../src/http/validate.ts";
import { silentLogger } from "../../src/log.ts";
import { type MemoryCluster, memoryCluster } from "./memory-cluster.ts";

let c: MemoryCluster;
beforeAll(async () => {
  c = await memoryCluster(3);
});
afterAll(() => c.stop());

/**
 * A request as Bun hands it over for `Host: [::1` (the URL string is not parsable), which a real
 * `Request` cannot be built with: only what the handlers read.
 */
function badHostRequest(method: string, pathAndQuery: string, body?: ReadableStream): Request {
  return {
    method,
    url: `http://[::1${pathAndQuery}`,
    headers: new Headers(),
    body: body ?? null,
    arrayBuffer: () => Promise.resolve(new ArrayBuffer(0)),
    signal: new AbortController().signal,
  } as unknown as Request;
}

async function answer(res: Response | Promise<Response>) {
  const r = await res;
  return { status: r.status, body: await r.json() };
}

describe("a URL the runtime built from a malformed Host header", () => {
  test("rawPath resolves dot segments from the path alone", () => {
    expect(rawPath("http://[::1/kv/fz/./h")).toBe("/kv/fz/h");
    expect(rawPath("http://a b/kv/x/../y?q#f")).toBe("/kv/y");
    expect(rawPath("http://%00/all-nodes/fz/.")).toBe("/all-nodes/fz/");
    // Never the host of a path starting with `//`: it stays a path.
    expect(rawPath("http://h//evil/../kv/x")).toBe("//kv/x");
  });

  test("consistencyParam reads the query alone", () => {
    expect(consistencyParam("http://[::1/kv/x?consistency=one#frag")).toBe("one");
    expect(consistencyParam("http://[::1/kv/x?consistency=all&consistency=%zz")).toBe("all");
    // Any other parameter is a 400 naming it (issue 16, point 12).
    expect(() => consistencyParam("http://[::1/kv/x?a=%zz&consistency=all")).toThrow(
      "unknown query parameter 'a'",
    );
    expect(consistencyParam("http://[::1/kv/x")).toBeUndefined();
  });

  test("GET /kv/{key} with a dot segment or a query: answered, not a 500", async () => {
    const app = c.nodes[0]!.app;
    expect(await answer(app.fetch(badHostRequest("GET", "/kv/fz/./h")))).toMatchObject({
      status: 404,
      body: { status: "FAILED" },
    });
    expect(await answer(app.fetch(badHostRequest("GET", "/kv/fzq?consistency=one")))).toMatchObject(
      { status: 404, body: { status: "FAILED" } },
    );
    const nodes = await answer(app.fetch(badHostRequest("GET", "/all-nodes/fz/.")));
    expect(nodes.status).toBe(200);
    expect(nodes.body.allNodes).toHaveLength(3);
  });
});

describe("a body the runtime aborted (broken chunked framing, the client gone)", () => {
  test("asDkvError: an AbortError DOMException is a 400; anything else is left a bug", () => {
    const cut = asDkvError(new DOMException("The connection was closed.", "AbortError"));
    expect(cut).toBeInstanceOf(DkvError);
    expect((cut as DkvError).status).toBe(400);
    const bug = new TypeError("x");
    expect(asDkvError(bug)).toBe(bug);
    const timeout = new DOMException("timed out", "TimeoutError");
    expect(asDkvError(timeout)).toBe(timeout);
  });

  test("PUT /kv/{key} and a signed-less internal POST whose body read fails: 400, nothing logged as unhandled", async () => {
    const errors: string[] = [];
    const node = c.nodes[0]!;
    // The in-memory members log to silentLogger: listen to its error lines for this test.
    const original = silentLogger.error;
    silentLogger.error = (m: string) => errors.push(m);
    try {
      const aborted = () =>
        new ReadableStream({
          pull(ctl) {
            ctl.error(new DOMException("The connection was closed.", "AbortError"));
          },
        });
      const put = new Request(
        "http://h/kv/fzc",
        { method: "PUT", body: aborted(), duplex: "half" } as RequestInit,
      );
      expect(await answer(node.app.fetch(put))).toMatchObject({
        status: 400,
        body: { status: "FAILED" },
      });
      const internal = new Request("http://h/internal/v1/kv/read", {
        method: "POST",
        body: aborted(),
        duplex: "half",
      } as RequestInit);
      expect(await answer(node.app.fetch(internal))).toMatchObject({ status: 400 });
    } finally {
      silentLogger.error = original;
    }
    expect(errors).toEqual([]);
  });
});
