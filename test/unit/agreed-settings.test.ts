/**
 * Issue 16, points 9 and 10 in the pure parts: how two members' must-agree settings differ, and
 * which table changes are membership events worth an info line.
 */
import { describe, expect, test } from "bun:test";
import { type MemberLimits, settingsDiffer } from "../../src/core/agreed-settings.ts";
import { membershipEvent } from "../../src/node/gossip-agent.ts";
import type { SwimMember } from "../../src/core/swim.ts";

const LIMITS: MemberLimits = { keyBytesMax: 1024, valueBytesMax: 1_048_576, membersMax: 1024 };
const ORCH = { replicationFactor: 3, partitions: 256, source: "orchestrator" } as const;
const OWN = { replicationFactor: 3, partitions: 256, source: "node" } as const;

describe("settingsDiffer", () => {
  test("the same settings: no difference", () => {
    expect(settingsDiffer({ limits: LIMITS, placement: ORCH }, { limits: LIMITS, placement: ORCH }))
      .toEqual([]);
  });

  test("each differing limit is named with both values", () => {
    const theirs = { keyBytesMax: 5, valueBytesMax: 1_048_576, membersMax: 2 };
    expect(settingsDiffer({ limits: LIMITS, placement: ORCH }, { limits: theirs })).toEqual([
      "--max-key-bytes 1024 here, 5 there",
      "--max-members 1024 here, 2 there",
    ]);
  });

  test("N and P differ between settings of the same source", () => {
    const theirs = { replicationFactor: 2, partitions: 32, source: "node" } as const;
    expect(settingsDiffer({ limits: LIMITS, placement: OWN }, { placement: theirs })).toEqual([
      "--replication-factor 3 here, 2 there",
      "--partitions 256 here, 32 there",
    ]);
  });

  test("a node still on its own N and P is not a mismatch with an orchestrator's (it adopts them)", () => {
    const theirs = { replicationFactor: 2, partitions: 32, source: "orchestrator" } as const;
    expect(settingsDiffer({ limits: LIMITS, placement: OWN }, { placement: theirs })).toEqual([]);
    expect(settingsDiffer({ limits: LIMITS, placement: undefined }, { placement: theirs }))
      .toEqual([]);
  });

  test("an older member that sends no limits is compared on placement only", () => {
    expect(settingsDiffer({ limits: LIMITS, placement: ORCH }, { placement: ORCH })).toEqual([]);
  });
});

function member(state: SwimMember["state"], inRing = true): SwimMember {
  return {
    id: "n2",
    address: "127.0.0.1:8081",
    role: "node",
    incarnation: 1,
    state,
    inRing,
  };
}

describe("membershipEvent", () => {
  const table: [string, Parameters<typeof membershipEvent>[0], SwimMember, string | undefined][] = [
    [
      "first seen",
      undefined,
      member("UP"),
      "member n2 (127.0.0.1:8081, node) seen: UP, in the ring",
    ],
    ["DOWN", { state: "UP", inRing: true }, member("DOWN"), "member n2 is DOWN, in the ring"],
    ["SUSPECT is routine", { state: "UP", inRing: true }, member("SUSPECT"), undefined],
    ["refuted", { state: "SUSPECT", inRing: true }, member("UP"), undefined],
    ["back", { state: "DOWN", inRing: true }, member("UP"), "member n2 is back UP, in the ring"],
    [
      "left",
      { state: "UP", inRing: true },
      member("LEFT", false),
      "member n2 left the cluster (out of the ring)",
    ],
    [
      "out of the ring",
      { state: "DOWN", inRing: true },
      member("DOWN", false),
      "member n2 is out of the ring (DOWN)",
    ],
    ["first seen LEFT: nothing", undefined, member("LEFT", false), undefined],
  ];
  for (const [name, before, now, want] of table) {
    test(name, () => expect(membershipEvent(before, now)).toBe(want));
  }
});
