/**
 * The simulator's own parts: the scheduler's order, pauses and kills, and the network's
 * delivery, cuts, refusals and timeouts on simulated time.
 */
import { describe, expect, test } from "bun:test";
import { sleep, timeoutSignal } from "../../src/core/scheduler.ts";
import { SimNetwork } from "./sim-network.ts";
import { SIM_EPOCH_MS, SimProc, SimWorld, stream } from "./sim-scheduler.ts";

const proc = (w: SimWorld, name: string) => new SimProc(w, name, stream(1, name));

describe("sim scheduler", () => {
  test("events run in (time, order) sequence on simulated time; clear cancels", async () => {
    const w = new SimWorld(1);
    const p = proc(w, "a");
    const seen: string[] = [];
    p.setTimeout(() => seen.push(`b@${w.elapsedMs}`), 20);
    p.setTimeout(() => seen.push(`a@${w.elapsedMs}`), 10);
    p.setTimeout(() => seen.push(`c@${w.elapsedMs}`), 20);
    p.clear(p.setTimeout(() => seen.push("never"), 5));
    p.defer(() => seen.push(`d@${w.elapsedMs}`));
    await w.runUntil(100);
    expect(seen).toEqual(["d@0", "a@10", "b@20", "c@20"]);
    expect(w.nowMs).toBe(SIM_EPOCH_MS + 100);
  });

  test("a paused process runs what came due on resume; a killed one runs nothing", async () => {
    const w = new SimWorld(1);
    const a = proc(w, "a"), b = proc(w, "b");
    a.skewMs = 5_000;
    let ticks = 0, bTicks = 0;
    a.setInterval(() => ticks++, 10);
    b.setInterval(() => bTicks++, 10);
    a.pause();
    await w.runUntil(100);
    expect(ticks).toBe(0);
    a.resume();
    await w.runUntil(100);
    expect(ticks).toBe(1); // the interval's due tick, once (as after SIGCONT)
    b.kill();
    await w.runUntil(200);
    expect(ticks).toBe(11);
    expect(bTicks).toBe(10);
    expect(a.now() - w.nowMs).toBe(5_000);
  });

  test("a promise chain started by an event settles before the next event", async () => {
    const w = new SimWorld(1);
    const p = proc(w, "a");
    const seen: string[] = [];
    p.setTimeout(() => {
      void (async () => {
        await Promise.resolve();
        await sleep(p, 0);
        seen.push("chain");
      })();
    }, 10);
    p.setTimeout(() => seen.push("next"), 10);
    await w.runUntil(50);
    expect(seen).toEqual(["next", "chain"]); // sleep(0) is a new event, after "next"
  });
});

describe("sim network", () => {
  const server = { fetch: (req: Request) => new Response(`hello ${new URL(req.url).pathname}`) };

  test("delivers after a delay, refuses a closed address, loses cut links until timeout", async () => {
    const w = new SimWorld(1);
    const net = new SimNetwork(w, stream(1, "net"));
    const a = proc(w, "a"), b = proc(w, "b");
    net.listen("b:1", b, server);
    const out: string[] = [];
    const call = (path: string) => {
      const t = timeoutSignal(a, 500);
      net.fetchFrom("a:1", a)(`http://b:1${path}`, { method: "GET", signal: t.signal })
        .then((r) => r.text(), (e: Error) => `${e.name}: ${e.message}`)
        .then((x) => out.push(`${w.elapsedMs}ms ${x}`))
        .finally(() => t.done());
    };
    w.at(0, () => call("/x"));
    await w.runUntil(100);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatch(/^\d+ms hello \/x$/);
    w.at(0, () => {
      net.cut("a:1", "b:1");
      call("/cut");
    });
    await w.runUntil(1_000);
    expect(out[1]).toBe("600ms TimeoutError: timed out after 500ms");
    w.at(0, () => {
      net.healLinks();
      net.close("b:1");
      call("/closed");
    });
    await w.runUntil(1_100);
    expect(out[2]).toMatch(/connection refused \(b:1\)/);
  });

  test("a paused server answers after it resumes", async () => {
    const w = new SimWorld(1);
    const net = new SimNetwork(w, stream(1, "net"));
    const a = proc(w, "a"), b = proc(w, "b");
    net.listen("b:1", b, server);
    let at = -1;
    b.pause();
    w.at(0, () => {
      void net.fetchFrom("a:1", a)("http://b:1/p", { method: "GET" }).then(() => {
        at = w.elapsedMs;
      });
    });
    w.at(300, () => b.resume());
    await w.runUntil(1_000);
    expect(at).toBeGreaterThanOrEqual(300);
    expect(at).toBeLessThan(320);
  });
});
