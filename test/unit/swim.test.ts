/**
 * One Swim state machine driven by hand: time passed in, messages fed in, answers inspected.
 * rng = 0 makes every choice the first candidate: a member learned later goes to the front of
 * the probe order, and helpers come in table order.
 */
import { describe, expect, test } from "bun:test";
import {
  type AckMsg,
  type Gossip,
  type NackMsg,
  type Outbound,
  type PingMsg,
  type PingReqMsg,
  type PushPullMsg,
  Swim,
  SWIM_LAN,
  type SwimConfig,
  type SwimMember,
  type SwimMsg,
  type SwimMsgType,
} from "../../src/core/swim.ts";
import { GossipEnvelope } from "../../src/transport/messages.ts";

const T0 = 10_000;
const addr = (id: string) => `${id}:7946`;
const idOf = (address: string) => address.split(":")[0]!;

const rec = (id: string, over: Partial<SwimMember> = {}): SwimMember => ({
  id,
  address: addr(id),
  role: "node",
  incarnation: 1,
  state: "UP",
  inRing: true,
  ...over,
});
const gossip = (m: SwimMember, by: string): Gossip => ({ ...m, by });

const ping = (from: string, target: string, seq: number, updates: Gossip[] = []): PingMsg => ({
  type: "ping",
  from,
  fromAddress: addr(from),
  seq,
  target,
  updates,
});
const ack = (from: string, seq: number, updates: Gossip[] = []): AckMsg => ({
  type: "ack",
  from,
  fromAddress: addr(from),
  seq,
  updates,
});
const nack = (from: string, seq: number): NackMsg => ({
  type: "nack",
  from,
  fromAddress: addr(from),
  seq,
  updates: [],
});
const pingReq = (from: string, seq: number, target: string, timeoutMs: number): PingReqMsg => ({
  type: "ping-req",
  from,
  fromAddress: addr(from),
  seq,
  target,
  targetAddress: addr(target),
  timeoutMs,
  updates: [],
});
const pushPull = (from: string, members: SwimMember[], reply: boolean): PushPullMsg => ({
  type: "push-pull",
  from,
  fromAddress: addr(from),
  reply,
  members,
});

type Of<T extends SwimMsgType> = { to: string; msg: Extract<SwimMsg, { type: T }> };
const of = <T extends SwimMsgType>(out: readonly Outbound[], type: T): Of<T>[] =>
  out.filter((o) => o.msg.type === type) as Of<T>[];

/**
 * Member "a" that knows b, c, d, e (all UP at incarnation 1), learned in the order e, d, c, b:
 * it probes b, c, d, e in that order, and its helpers for b are e, d, c.
 */
function make(config: SwimConfig = SWIM_LAN, others = ["e", "d", "c", "b"]): Swim {
  const s = new Swim(rec("a"), config, () => 0);
  expect(s.handle(pushPull("b", others.map((id) => rec(id)), true), 0)).toEqual([]);
  s.drainChanges();
  return s;
}

interface World {
  /** Everything `a` sent, with the time. */
  sent: { atMs: number; o: Outbound }[];
  /** Every change in a's table, with the time. */
  changes: { atMs: number; m: SwimMember }[];
}

/**
 * Tick `s` every 10 ms over [fromMs, toMs]; the other members answer at once: pings with an
 * ack, ping-reqs with a relayed ack, or a nack if the target is in `dead`. Dead members answer
 * nothing.
 */
function drive(s: Swim, fromMs: number, toMs: number, dead: ReadonlySet<string>): World {
  const w: World = { sent: [], changes: [] };
  for (let t = fromMs; t <= toMs; t += 10) {
    const queue = s.tick(t);
    while (queue.length > 0) {
      const o = queue.shift()!;
      w.sent.push({ atMs: t, o });
      const to = idOf(o.to);
      if (dead.has(to)) continue;
      if (o.msg.type === "ping") queue.push(...s.handle(ack(to, o.msg.seq), t));
      if (o.msg.type === "ping-req") {
        const answer = dead.has(o.msg.target) ? nack(to, o.msg.seq) : ack(to, o.msg.seq);
        queue.push(...s.handle(answer, t));
      }
    }
    for (const m of s.drainChanges()) w.changes.push({ atMs: t, m });
  }
  return w;
}

const firstChange = (w: World, id: string, state: string) =>
  w.changes.find((c) => c.m.id === id && c.m.state === state)?.atMs;

describe("probing", () => {
  test("pings the next member of the round-robin order, with piggybacked news", () => {
    const s = make();
    const out = s.tick(T0);
    const [p] = of(out, "ping");
    expect(of(out, "ping")).toHaveLength(1);
    expect(p!.to).toBe(addr("b"));
    expect(p!.msg).toMatchObject({ from: "a", fromAddress: addr("a"), target: "b" });
    // The members just learned from the push-pull ride along.
    expect(p!.msg.updates.map((g) => g.id).sort()).toEqual(["b", "c", "d", "e"]);
    expect(s.stats.probes).toBe(1);
  });

  test("an ack ends the probe: no ping-req, the next probe one period later", () => {
    const s = make();
    const [p] = of(s.tick(T0), "ping");
    expect(s.handle(ack("b", p!.msg.seq), T0 + 5)).toEqual([]);
    expect(s.tick(T0 + 100)).toEqual([]);
    const next = of(s.tick(T0 + 200), "ping");
    expect(next.map((o) => o.msg.target)).toEqual(["c"]);
    expect(s.member("b")!.state).toBe("UP");
  });

  test("an ack with another seq does not end the probe", () => {
    const s = make();
    const [p] = of(s.tick(T0), "ping");
    s.handle(ack("b", p!.msg.seq + 100), T0 + 5);
    expect(of(s.tick(T0 + 100), "ping-req")).toHaveLength(3);
  });

  test("after the probe timeout, k helpers get a ping-req; a nack spares our health", () => {
    const s = make();
    const [p] = of(s.tick(T0), "ping");
    expect(s.tick(T0 + 99)).toEqual([]);
    const reqs = of(s.tick(T0 + 100), "ping-req");
    expect(reqs.map((o) => o.to)).toEqual([addr("e"), addr("d"), addr("c")]);
    for (const r of reqs) {
      // Helpers nack within half of the 100 ms left, so the nack is back in time.
      expect(r.msg).toMatchObject({ seq: p!.msg.seq, target: "b", timeoutMs: 50 });
    }
    s.handle(nack("c", p!.msg.seq), T0 + 160);
    const out = s.tick(T0 + 200);
    expect(s.member("b")!.state).toBe("SUSPECT");
    expect(s.health).toBe(0);
    // Buddy system: b is told at once, its own record first.
    const toB = of(out, "ping").filter((o) => o.to === addr("b"));
    expect(toB).toHaveLength(1);
    expect(toB[0]!.msg.updates[0]).toMatchObject({ id: "b", state: "SUSPECT", by: "a" });
  });

  test("no ack and no nack: our health drops, and our periods and timeouts stretch", () => {
    const s = make();
    s.tick(T0);
    s.tick(T0 + 100);
    const out = s.tick(T0 + 200);
    expect(s.health).toBe(1);
    // The next probe started at T0 + 200 with a doubled timeout: ping-req at +200, not +100.
    const [p] = of(out, "ping").filter((o) => o.msg.target === "c");
    expect(p).toBeDefined();
    expect(of(s.tick(T0 + 300), "ping-req")).toHaveLength(0);
    // Helpers are UP members: b is SUSPECT now, so e and d.
    expect(of(s.tick(T0 + 400), "ping-req").map((o) => o.to)).toEqual([addr("e"), addr("d")]);
    // A relayed ack (the helper echoes our seq) is a success: health back to 0.
    s.handle(ack("d", p!.msg.seq), T0 + 420);
    expect(s.health).toBe(0);
    expect(s.member("c")!.state).toBe("UP");
  });

  test("a late tick still gives the indirect round its full length", () => {
    const s = make();
    const [p] = of(s.tick(T0), "ping");
    expect(of(s.tick(T0 + 350), "ping-req")).toHaveLength(3); // late, but below a pause
    expect(s.tick(T0 + 400)).toEqual([]); // judged at +450, not at +200
    s.handle(ack("c", p!.msg.seq), T0 + 440);
    s.tick(T0 + 460);
    expect(s.member("b")!.state).toBe("UP");
  });

  test("each pass covers every live member once, skipping DOWN and LEFT ones", () => {
    const s = make();
    s.handle(ping("c", "a", 1, [gossip(rec("d", { state: "DOWN" }), "c")]), T0 - 1);
    s.handle(ping("c", "a", 2, [gossip(rec("e", { state: "LEFT" }), "e")]), T0 - 1);
    const w = drive(s, T0, T0 + 2000, new Set());
    const targets = w.sent.filter((x) => x.o.msg.type === "ping").map((x) => idOf(x.o.to));
    expect(new Set(targets)).toEqual(new Set(["b", "c"]));
    expect(targets.length).toBeGreaterThanOrEqual(10);
  });
});

describe("suspicion", () => {
  test("a dead member: SUSPECT after one probe period, DOWN after the maximum timeout", () => {
    const s = make();
    const w = drive(s, T0, T0 + 4000, new Set(["b"]));
    expect(firstChange(w, "b", "SUSPECT")).toBe(T0 + 200);
    // n = 5 live: min 2 · 1 · 200 = 400 ms, max 6 · 400 = 2400 ms; nobody else confirms.
    expect(firstChange(w, "b", "DOWN")).toBe(T0 + 200 + 2400);
    expect(s.health).toBe(0); // helpers nacked: it was not our fault
    expect(s.stats.declaredDown).toBe(1);
  });

  test("k independent confirmations shrink the timeout to the minimum", () => {
    const s = make();
    const w1 = drive(s, T0, T0 + 290, new Set(["b"]));
    expect(firstChange(w1, "b", "SUSPECT")).toBe(T0 + 200);
    const suspectB = rec("b", { state: "SUSPECT" });
    for (const [i, by] of ["c", "d", "e"].entries()) {
      s.handle(ping(by, "a", 100 + i, [gossip(suspectB, by)]), T0 + 300);
    }
    const w2 = drive(s, T0 + 300, T0 + 1000, new Set(["b"]));
    expect(firstChange(w2, "b", "DOWN")).toBe(T0 + 200 + 400);
  });

  test("the same confirmer twice, or our own accusation echoed back, counts once", () => {
    const s = make();
    drive(s, T0, T0 + 290, new Set(["b"]));
    const suspectB = rec("b", { state: "SUSPECT" });
    for (const by of ["c", "c", "a", "c"]) {
      s.handle(ping(by, "a", 7, [gossip(suspectB, by)]), T0 + 300);
    }
    const w = drive(s, T0 + 300, T0 + 3000, new Set(["b"]));
    // One confirmation: max − (max − min) · ln 2 / ln 4 = 2400 − 1000 = 1400 ms.
    expect(firstChange(w, "b", "DOWN")).toBe(T0 + 200 + 1400);
  });

  test("a refutation (higher incarnation) ends the suspicion", () => {
    const s = make();
    drive(s, T0, T0 + 290, new Set(["b"]));
    s.handle(ack("c", 999, [gossip(rec("b", { incarnation: 2 }), "b")]), T0 + 300);
    const w = drive(s, T0 + 300, T0 + 4000, new Set());
    expect(firstChange(w, "b", "DOWN")).toBeUndefined();
    expect(s.member("b")).toEqual(rec("b", { incarnation: 2 }));
  });

  test("while we suspect anyone, our messages carry that suspicion for a check", () => {
    // One transmission per queued update: what comes later is the check, not the queue.
    const s = make({ ...SWIM_LAN, retransmitMult: 1 });
    const w = drive(s, T0, T0 + 1000, new Set(["b"]));
    const later = w.sent.filter((x) => x.atMs > T0 + 1000 - 200 && x.o.msg.type === "ping");
    expect(later.length).toBeGreaterThan(0);
    for (const x of later) {
      const m = x.o.msg as PingMsg;
      expect(m.updates.some((g) => g.id === "b" && g.state === "SUSPECT" && g.by === "a"))
        .toBe(true);
    }
  });
});

describe("news about ourselves", () => {
  test("a suspicion about us is refuted: higher incarnation, gossiped at once", () => {
    const s = make();
    const out = s.handle(ping("c", "a", 5, [gossip(rec("a", { state: "SUSPECT" }), "c")]), T0);
    expect(s.self).toEqual(rec("a", { incarnation: 2 }));
    const [a] = of(out, "ack");
    expect(a!.to).toBe(addr("c"));
    expect(a!.msg.seq).toBe(5);
    expect(a!.msg.updates[0]).toMatchObject({ id: "a", state: "UP", incarnation: 2, by: "a" });
    expect(s.health).toBe(1);
    expect(s.stats.refutations).toBe(1);
  });

  test("an old accusation (lower incarnation) is answered with our current record", () => {
    const s = make({ ...SWIM_LAN, retransmitMult: 1 });
    s.handle(ping("c", "a", 5, [gossip(rec("a", { state: "SUSPECT" }), "c")]), T0);
    s.handle(ping("e", "a", 8), T0); // uses up the queue
    const out = s.handle(ping("d", "a", 6, [gossip(rec("a", { state: "DOWN" }), "d")]), T0 + 1);
    expect(s.self.incarnation).toBe(2);
    expect(of(out, "ack")[0]!.msg.updates[0]).toMatchObject({ id: "a", incarnation: 2 });
  });

  test("a refutation is announced at once to k members, besides the answer", () => {
    const s = make();
    const out = s.handle(ack("c", 5, [gossip(rec("a", { state: "DOWN" }), "c")]), T0);
    const notices = of(out, "ping");
    expect(notices).toHaveLength(SWIM_LAN.indirectChecks);
    for (const n of notices) {
      expect(n.msg.updates).toContainEqual({ ...rec("a", { incarnation: 2 }), by: "a" });
    }
    // Nothing new to refute: no second burst.
    expect(of(s.handle(ack("c", 6, []), T0 + 1), "ping")).toHaveLength(0);
  });

  test("stale news about another member is corrected in the ack", () => {
    // One transmission per update, so the queue is empty by the time the stale news comes.
    const s = make({ ...SWIM_LAN, retransmitMult: 1 });
    s.handle(ack("c", 1, [gossip(rec("c", { incarnation: 3 }), "c")]), T0);
    s.handle(ping("e", "a", 8), T0); // its ack carries (and uses up) everything queued
    const out = s.handle(
      ping("d", "a", 9, [gossip(rec("c", { incarnation: 2, state: "SUSPECT" }), "d")]),
      T0 + 1,
    );
    expect(s.member("c")!.incarnation).toBe(3);
    expect(of(out, "ack")[0]!.msg.updates[0]).toMatchObject({ id: "c", incarnation: 3 });
  });
});

describe("pauses (local health)", () => {
  test("a tick far too late drops the probe in flight instead of suspecting", () => {
    const s = make();
    s.tick(T0);
    s.tick(T0 + 100); // ping-reqs out; b silent so far
    s.tick(T0 + 5000); // we were stopped for ~5 s
    expect(s.member("b")!.state).toBe("UP");
    expect(s.stats.pausesDetected).toBe(1);
    expect(s.health).toBe(1);
  });

  test("suspicion timers get the paused time back", () => {
    const s = make();
    s.tick(T0);
    const suspectC = gossip(rec("c", { state: "SUSPECT" }), "d");
    s.handle(ping("d", "a", 1, [suspectC]), T0 + 10); // deadline T0 + 10 + 2400
    s.tick(T0 + 3000); // paused from T0 to T0 + 3000
    expect(s.member("c")!.state).toBe("SUSPECT");
    // c answers our probes (no confirmation from us) but never refutes.
    const w = drive(s, T0 + 3010, T0 + 6000, new Set());
    expect(firstChange(w, "c", "DOWN")).toBe(T0 + 10 + 2400 + 3000);
  });

  test("nextTickAtMs keeps ticks within one probe interval, earlier for deadlines", () => {
    const s = make();
    s.tick(T0);
    expect(s.nextTickAtMs()).toBe(T0 + 100); // the probe timeout
    const [p] = of(s.tick(T0 + 10), "ping");
    expect(p).toBeUndefined();
    s.handle(ack("b", 1), T0 + 20);
    expect(s.nextTickAtMs()).toBeLessThanOrEqual(T0 + 10 + SWIM_LAN.probeIntervalMs);
  });
});

describe("indirect probes for others (ping-req)", () => {
  test("the helper pings the target and relays its ack with the requester's seq", () => {
    const s = make();
    const [p] = of(s.handle(pingReq("c", 77, "d", 50), T0), "ping");
    expect(p!.to).toBe(addr("d"));
    expect(p!.msg.target).toBe("d");
    const [relayed] = of(s.handle(ack("d", p!.msg.seq), T0 + 5), "ack");
    expect(relayed!.to).toBe(addr("c"));
    expect(relayed!.msg.seq).toBe(77);
    expect(s.handle(ack("d", p!.msg.seq), T0 + 6)).toEqual([]); // relayed once
  });

  test("a silent target: nack after timeoutMs, a late ack still relayed until 2×", () => {
    const s = make();
    const [p] = of(s.handle(pingReq("c", 77, "d", 50), T0), "ping");
    expect(of(s.tick(T0 + 49), "nack")).toHaveLength(0);
    const [n] = of(s.tick(T0 + 50), "nack");
    expect(n).toMatchObject({ to: addr("c"), msg: { seq: 77 } });
    expect(of(s.tick(T0 + 60), "nack")).toHaveLength(0); // only once
    expect(of(s.handle(ack("d", p!.msg.seq), T0 + 70), "ack")).toHaveLength(1);
    const [q] = of(s.handle(pingReq("c", 78, "d", 50), T0 + 200), "ping");
    s.tick(T0 + 300);
    expect(s.handle(ack("d", q!.msg.seq), T0 + 301)).toEqual([]); // forgotten
  });

  test("asked to probe ourselves: we ack directly", () => {
    const s = make();
    const out = s.handle(pingReq("c", 5, "a", 50), T0);
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ to: addr("c"), msg: { type: "ack", seq: 5 } });
  });

  test("relays are bounded", () => {
    const s = make({ ...SWIM_LAN, relaysMax: 2 });
    for (let i = 0; i < 3; i++) s.handle(pingReq("c", i, "d", 50), T0);
    expect(s.stats.relaysDropped).toBe(1);
  });
});

describe("messages", () => {
  test("a ping for another member id (an old address) gets no ack", () => {
    const s = make();
    expect(s.handle(ping("c", "someone-else", 3), T0)).toEqual([]);
    expect(s.handle(ping("a", "a", 3), T0)).toEqual([]); // from ourselves: ignored
  });

  test("push-pull: a request is answered with our full table, an answer is not", () => {
    const s = make();
    const out = s.handle(pushPull("f", [rec("f"), rec("g", { state: "DOWN" })], false), T0);
    expect(out).toHaveLength(1);
    const [r] = of(out, "push-pull");
    expect(r!.to).toBe(addr("f"));
    expect(r!.msg.reply).toBe(true);
    expect(r!.msg.members.map((m) => m.id)).toEqual(["a", "b", "c", "d", "e", "f", "g"]);
    expect(s.member("g")!.state).toBe("DOWN");
    expect(s.handle(pushPull("f", [rec("f")], true), T0)).toEqual([]);
  });

  test("a member's link port travels in its record, on the wire too (--peer-port)", () => {
    const x = new Swim(rec("x", { linkPort: 9100 }), SWIM_LAN, () => 0);
    const y = new Swim(rec("y"), SWIM_LAN, () => 0);
    const [out] = x.join([addr("y")]);
    // Through the gossip body's schema, as a real message would come.
    const wire = GossipEnvelope.parse(JSON.parse(JSON.stringify({ msg: out!.msg })));
    const back = y.handle(wire.msg as SwimMsg, T0);
    expect(y.member("x")!.linkPort).toBe(9100);
    expect("linkPort" in y.member("y")!).toBe(false);
    // And y's answer (its full table) gives it back to x as x's own word, unchanged.
    const [answer] = of(back, "push-pull");
    expect(answer!.msg.members.find((m) => m.id === "x")!.linkPort).toBe(9100);
    expect(() =>
      GossipEnvelope.parse({ msg: { ...wire.msg, members: [rec("z", { linkPort: 0 })] } })
    )
      .toThrow();
  });

  test("the table is bounded: news about more members is dropped and counted", () => {
    const s = make({ ...SWIM_LAN, membersMax: 4 });
    expect(s.size).toBe(4);
    expect(s.stats.membersDropped).toBe(1);
  });

  test("stats estimate bytes as the JSON length of every message", () => {
    const s = make();
    const out = [...s.tick(T0), ...s.handle(ping("c", "a", 1), T0)];
    const bytes = out.reduce((n, o) => n + JSON.stringify(o.msg).length, 0);
    expect(s.stats.bytesSent).toBe(bytes);
    expect(s.stats.messagesSent).toBe(out.length);
    expect(s.stats.byType.ack.messages).toBe(1);
  });

  test("drainChanges returns each changed record once", () => {
    const s = make();
    s.handle(ping("c", "a", 1, [gossip(rec("b", { state: "SUSPECT" }), "c")]), T0);
    s.handle(ping("c", "a", 2, [gossip(rec("b", { state: "DOWN" }), "c")]), T0);
    expect(s.drainChanges()).toEqual([rec("b", { state: "DOWN" })]);
    expect(s.drainChanges()).toEqual([]);
  });
});

describe("join and leave", () => {
  test("join sends a push-pull to each seed once, never to ourselves", () => {
    const s = new Swim(rec("a"), SWIM_LAN, () => 0);
    const out = s.join([addr("b"), addr("b"), addr("a"), addr("c")]);
    expect(out.map((o) => o.to)).toEqual([addr("b"), addr("c")]);
    expect(of(out, "push-pull").every((o) => !o.msg.reply)).toBe(true);
  });

  test("join is bounded by joinSeedsMax", () => {
    const s = new Swim(rec("a"), { ...SWIM_LAN, joinSeedsMax: 2 }, () => 0);
    expect(s.join(["x:1", "y:1", "z:1"])).toHaveLength(2);
  });

  test("alone, it retries the seeds each probe period; the answer brings the table", () => {
    const s = new Swim(rec("a"), SWIM_LAN, () => 0);
    s.join([addr("b")]);
    expect(of(s.tick(T0), "push-pull").map((o) => o.to)).toContain(addr("b"));
    s.handle(pushPull("b", [rec("b"), rec("c")], true), T0 + 5);
    expect(s.members().map((m) => m.id)).toEqual(["a", "b", "c"]);
    const out = s.tick(T0 + 200);
    expect(of(out, "ping")).toHaveLength(1);
    // We announce ourselves on what we send.
    expect(of(out, "ping")[0]!.msg.updates.some((g) => g.id === "a")).toBe(true);
  });

  test("leave: LEFT and out of the ring, told to a few members, once", () => {
    const s = make();
    const out = s.leave();
    expect(s.self).toEqual(rec("a", { state: "LEFT", inRing: false }));
    expect(of(out, "ping")).toHaveLength(SWIM_LAN.indirectChecks);
    for (const o of of(out, "ping")) {
      expect(o.msg.updates.some((g) => g.id === "a" && g.state === "LEFT")).toBe(true);
    }
    expect(s.leave()).toEqual([]);
    expect(s.dutyHolder()).toBe("b");
  });

  test("a leaving member accuses nobody", () => {
    const s = make();
    s.leave();
    drive(s, T0, T0 + 1000, new Set(["b", "c", "d", "e"]));
    expect(s.members().filter((m) => m.state === "SUSPECT")).toEqual([]);
  });
});

describe("orchestrator duty", () => {
  test("markOutOfRing: only a DOWN member in the ring, same incarnation, idempotent", () => {
    const s = make();
    s.handle(ping("c", "a", 1, [gossip(rec("b", { state: "DOWN", incarnation: 4 }), "c")]), T0);
    expect(s.markOutOfRing("b", T0)).toBe(true);
    expect(s.member("b")).toEqual(rec("b", { state: "DOWN", incarnation: 4, inRing: false }));
    expect(s.markOutOfRing("b", T0)).toBe(false);
    expect(s.markOutOfRing("c", T0)).toBe(false); // UP
    expect(s.markOutOfRing("zz", T0)).toBe(false); // unknown
    const [p] = of(s.tick(T0), "ping");
    expect(p!.msg.updates).toContainEqual({
      ...rec("b", { state: "DOWN", incarnation: 4, inRing: false }),
      by: "a",
    });
  });

  test("dutyHolder: the orchestrator while alive, else the lowest live node id", () => {
    const s = new Swim(rec("m"), SWIM_LAN, () => 0);
    s.handle(pushPull("o", [rec("o", { role: "orchestrator" }), rec("c"), rec("b")], true), 0);
    expect(s.dutyHolder()).toBe("o");
    s.handle(ack("c", 1, [gossip(rec("o", { role: "orchestrator", state: "SUSPECT" }), "c")]), 1);
    expect(s.dutyHolder()).toBe("o"); // a suspicion is not a verdict
    s.handle(ack("c", 2, [gossip(rec("o", { role: "orchestrator", state: "DOWN" }), "c")]), 2);
    expect(s.dutyHolder()).toBe("b");
    s.handle(ack("c", 3, [gossip(rec("b", { state: "DOWN" }), "c")]), 3);
    expect(s.dutyHolder()).toBe("c");
    const back = rec("o", { role: "orchestrator", incarnation: 2 });
    s.handle(ack("c", 4, [gossip(back, "o")]), 4);
    expect(s.dutyHolder()).toBe("o"); // handed back
  });

  test("dutyHolder is never a gateway, even with the lowest id", () => {
    const s = new Swim(rec("m"), SWIM_LAN, () => 0);
    s.handle(
      pushPull(
        "o",
        [rec("o", { role: "orchestrator" }), rec("a", { role: "gateway" }), rec("b")],
        true,
      ),
      0,
    );
    s.handle(ack("b", 1, [gossip(rec("o", { role: "orchestrator", state: "DOWN" }), "b")]), 1);
    expect(s.dutyHolder()).toBe("b");
  });
});

describe("construction", () => {
  test("rejects a bad config and a member that does not start UP", () => {
    expect(() => new Swim(rec("a"), { ...SWIM_LAN, probeTimeoutMs: 500 }, () => 0)).toThrow();
    expect(() => new Swim(rec("a", { state: "DOWN" }), SWIM_LAN, () => 0)).toThrow(/UP/);
  });
});

describe("bounds on news (issue 9, part 2)", () => {
  const DAY = 86_400_000;

  test("an incarnation more than incarnationAheadMsMax ahead of our clock is dropped, even about us", () => {
    const s = make();
    const now = 5 * DAY;
    const limit = now + SWIM_LAN.incarnationAheadMsMax;
    // About another member: 2^53 - 1 LEFT would evict it for good; it is dropped.
    const forged = gossip(rec("b", { incarnation: Number.MAX_SAFE_INTEGER, state: "LEFT" }), "x");
    s.handle(ack("c", 1, [forged]), now);
    expect(s.member("b")).toMatchObject({ state: "UP", incarnation: 1 });
    // About ourselves: no refutation to an incarnation nobody would accept.
    s.handle(ack("c", 2, [gossip(rec("a", { incarnation: limit + 1, state: "DOWN" }), "x")]), now);
    expect(s.self.incarnation).toBe(1);
    // In a push-pull too, and for an unknown member.
    s.handle(pushPull("c", [rec("z", { incarnation: limit + 1 })], true), now);
    expect(s.member("z")).toBeUndefined();
    expect(s.stats.futureRefused).toBe(3);
    // At the bound it is news like any other, and the member can still refute it.
    s.handle(ack("c", 3, [gossip(rec("b", { incarnation: limit, state: "LEFT" }), "x")]), now);
    expect(s.member("b")).toMatchObject({ state: "LEFT", incarnation: limit });
    s.handle(ack("c", 4, [gossip(rec("a", { incarnation: limit, state: "DOWN" }), "x")]), now);
    expect(s.self).toMatchObject({ state: "UP", incarnation: limit + 1 });
  });

  test("a member's address and role change only with a higher incarnation", () => {
    const s = make();
    const moved = rec("b", { state: "SUSPECT", address: "evil:80", role: "orchestrator" });
    s.handle(ack("c", 1, [gossip(moved, "c")]), T0);
    expect(s.member("b")).toMatchObject({ state: "SUSPECT", address: addr("b"), role: "node" });
    s.handle(ack("c", 2, [gossip(rec("b", { incarnation: 2, address: "b2:7946" }), "b")]), T0);
    expect(s.member("b")).toMatchObject({ state: "UP", address: "b2:7946" });
  });

  function forgetter(forgetAfterMs: number) {
    const s = make({ ...SWIM_LAN, forgetAfterMs });
    s.handle(ack("c", 1, [gossip(rec("b", { state: "LEFT", inRing: false }), "b")]), 0);
    s.handle(ack("c", 2, [gossip(rec("d", { state: "DOWN", inRing: false }), "c")]), 0);
    s.handle(ack("c", 3, [gossip(rec("e", { state: "DOWN" }), "c")]), 0); // still in the ring
    return s;
  }

  test("LEFT and out-of-ring DOWN members are forgotten after forgetAfterMs; in-ring DOWN ones are not", () => {
    const s = forgetter(10_000);
    s.tick(1000); // first seen gone
    s.tick(10_999);
    expect(s.member("b")).toBeDefined();
    s.tick(12_000); // checked at most once a second: forgotten within a second of the bound
    expect(s.member("b")).toBeUndefined();
    expect(s.member("d")).toBeUndefined();
    expect(s.member("e")).toMatchObject({ state: "DOWN", inRing: true });
    expect(s.member("c")).toMatchObject({ state: "UP" });
    expect(s.stats.membersForgotten).toBe(2);
    expect(s.size).toBe(3);
  });

  test("old news of a forgotten member does not bring it back; a restart (higher incarnation) does", () => {
    const s = forgetter(10_000);
    s.tick(1000);
    s.tick(11_000);
    expect(s.member("b")).toBeUndefined();
    expect(s.member("d")).toBeUndefined();
    s.handle(pushPull("c", [rec("b", { state: "LEFT", inRing: false })], true), 11_100);
    s.handle(ack("c", 4, [gossip(rec("b"), "x")]), 11_100); // same incarnation, even UP
    expect(s.member("b")).toBeUndefined();
    s.handle(ack("c", 5, [gossip(rec("b", { incarnation: 2 }), "b")]), 11_200);
    expect(s.member("b")).toMatchObject({ state: "UP", incarnation: 2 });
    // The mark lasts forgetAfterMs, then nothing is left of it.
    s.handle(ack("c", 6, [gossip(rec("d", { incarnation: 1 }), "x")]), 11_300);
    expect(s.member("d")).toBeUndefined();
    s.tick(22_000);
    s.handle(ack("c", 7, [gossip(rec("d", { incarnation: 1 }), "x")]), 22_100);
    expect(s.member("d")).toMatchObject({ state: "UP" });
  });

  test("a member that comes back before forgetAfterMs is not forgotten later for its old absence", () => {
    const s = forgetter(10_000);
    s.tick(1000);
    s.handle(ack("c", 4, [gossip(rec("b", { incarnation: 2 }), "b")]), 5000);
    s.tick(6000);
    s.handle(
      ack("c", 5, [gossip(rec("b", { incarnation: 2, state: "LEFT", inRing: false }), "b")]),
      9000,
    );
    s.tick(11_000); // gone again since 11 000 (first check after it left)
    s.tick(20_000);
    expect(s.member("b")).toMatchObject({ state: "LEFT", incarnation: 2 });
    s.tick(21_000);
    expect(s.member("b")).toBeUndefined();
  });
});

describe("rememberRing (a restart from a data dir)", () => {
  // Simulator seeds 5082, 9150, 9579: after a whole-cluster power cut the first node back, an
  // orchestrator that restarted knowing nobody and a node that joined meanwhile made a ring of
  // themselves, which gave the keys of the members still away to members without them.
  const ring = ["a", "b", "c"].map((id) => ({ id, address: addr(id) }));

  test("holds the other members of the old ring DOWN and in the ring, at incarnation 0", () => {
    const s = new Swim(rec("a", { incarnation: T0 }), SWIM_LAN, () => 0);
    expect(s.rememberRing(ring, T0)).toBe(2);
    for (const id of ["b", "c"]) {
      expect(s.member(id)).toEqual({
        id,
        address: addr(id),
        role: "node",
        incarnation: 0,
        state: "DOWN",
        inRing: true,
      });
    }
    expect(s.self.state).toBe("UP");
    expect(s.drainChanges().map((m) => m.id).sort()).toEqual(["b", "c"]);
    expect(s.rememberRing(ring, T0)).toBe(0); // idempotent
  });

  test("leaves members it already holds as they are", () => {
    const s = make();
    expect(s.rememberRing([...ring, { id: "z", address: addr("z") }], T0)).toBe(1);
    expect(s.member("b")).toEqual(rec("b"));
    expect(s.member("z")?.state).toBe("DOWN");
  });

  test("a member that knew nobody (an orchestrator back empty) takes them in its ring", () => {
    const a = new Swim(rec("a", { incarnation: T0 }), SWIM_LAN, () => 0);
    a.rememberRing(ring, T0);
    const o = new Swim(rec("o", { role: "orchestrator", inRing: false }), SWIM_LAN, () => 0);
    o.handle(pushPull("n", [rec("n", { incarnation: T0 })], true), T0); // a fresh node joined
    o.handle(pushPull("a", a.members(), true), T0);
    const inRing = o.members().filter((m) => m.role === "node" && m.inRing).map((m) => m.id);
    expect(inRing).toEqual(["a", "b", "c", "n"]);
    expect(o.member("b")?.state).toBe("DOWN");
  });

  test("the member's own word wins: back UP at its new incarnation", () => {
    const s = new Swim(rec("a", { incarnation: T0 }), SWIM_LAN, () => 0);
    s.rememberRing(ring, T0);
    s.handle(pushPull("b", [rec("b", { incarnation: T0 + 5 })], true), T0 + 10);
    expect(s.member("b")).toEqual(rec("b", { incarnation: T0 + 5 }));
  });

  test("with the incarnation it knew: one below it, so that a live member's word still wins", () => {
    const s = new Swim(rec("a", { incarnation: T0 }), SWIM_LAN, () => 0);
    s.rememberRing([{ id: "b", address: addr("b"), incarnation: 700 }], T0);
    expect(s.member("b")).toMatchObject({ incarnation: 699, state: "DOWN", inRing: true });
    s.handle(pushPull("c", [rec("b", { incarnation: 700 })], true), T0 + 10);
    expect(s.member("b")).toEqual(rec("b", { incarnation: 700 }));
  });

  test("an incarnation too far ahead of our clock is taken as not known", () => {
    const s = new Swim(rec("a", { incarnation: T0 }), SWIM_LAN, () => 0);
    const far = T0 + SWIM_LAN.incarnationAheadMsMax + 10;
    s.rememberRing([{ id: "b", address: addr("b"), incarnation: far }], T0);
    expect(s.member("b")).toMatchObject({ incarnation: 0, state: "DOWN", inRing: true });
  });
});

describe("rememberLeft (a restart from a data dir)", () => {
  const ring = ["a", "b", "c", "d"].map((id) => ({ id, address: addr(id), incarnation: 500 }));

  test("holds the members it knew had left as LEFT, out of the ring, at their incarnation", () => {
    const s = new Swim(rec("a", { incarnation: T0 }), SWIM_LAN, () => 0);
    expect(s.rememberLeft([{ id: "d", address: addr("d"), incarnation: 500 }], T0)).toBe(1);
    expect(s.member("d")).toEqual(rec("d", { incarnation: 500, state: "LEFT", inRing: false }));
    // rememberRing after it leaves it as it is.
    expect(s.rememberRing(ring, T0)).toBe(2);
    expect(s.member("d")?.state).toBe("LEFT");
    expect(s.rememberLeft([{ id: "d", address: addr("d"), incarnation: 500 }], T0)).toBe(0);
    expect(s.rememberLeft([{ id: "a", address: addr("a"), incarnation: 1 }], T0)).toBe(0);
    expect(s.self.state).toBe("UP");
  });

  // Simulator seed 1514 (N = 1): d left gracefully (handed off, exited) just before a power cut
  // of every member; c, paused through the leave, still had d in its logged ring and held it
  // DOWN in the ring after the restart; the others had forgotten d, so they took that in, and
  // after --dead-after the new owners of d's partitions waited for a hand-off from it for good.
  test("a member that knew of the leave wins over one whose ring still had the member", () => {
    const c = new Swim(rec("c", { incarnation: T0 }), SWIM_LAN, () => 0);
    c.rememberRing(ring, T0); // it never heard d leave
    expect(c.member("d")).toMatchObject({ state: "DOWN", inRing: true });
    const o = new Swim(rec("o", { role: "orchestrator", inRing: false }), SWIM_LAN, () => 0);
    o.rememberLeft([{ id: "d", address: addr("d"), incarnation: 500 }], T0);
    o.rememberRing(ring.filter((m) => m.id !== "d"), T0);
    // Either way round, both end with d LEFT and out of the ring.
    o.handle(pushPull("c", c.members(), true), T0 + 1);
    c.handle(pushPull("o", o.members(), true), T0 + 1);
    for (const s of [o, c]) {
      expect(s.member("d")).toMatchObject({ state: "LEFT", inRing: false, incarnation: 500 });
    }
  });

  test("a member that missed the rejoin keeps no stale LEFT over the ring of those who saw it", () => {
    // d left at 500 and rejoined at 900; c was away for the rejoin, b was not; then a power cut.
    const c = new Swim(rec("c", { incarnation: T0 }), SWIM_LAN, () => 0);
    c.rememberLeft([{ id: "d", address: addr("d"), incarnation: 500 }], T0);
    const b = new Swim(rec("b", { incarnation: T0 }), SWIM_LAN, () => 0);
    b.rememberRing([{ id: "d", address: addr("d"), incarnation: 900 }], T0);
    b.handle(pushPull("c", c.members(), true), T0 + 1);
    c.handle(pushPull("b", b.members(), true), T0 + 1);
    for (const s of [b, c]) {
      expect(s.member("d")).toMatchObject({ state: "DOWN", inRing: true, incarnation: 899 });
    }
  });
});
