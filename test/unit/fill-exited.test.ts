/**
 * AntiEntropy.fill counts a LEFT previous owner that does not answer as merged only when it has
 * exited (its address refuses connections), never on a timeout: a LEFT member still hands its data
 * off, and one cut off from us may hold commits no one else here has (sim seed 1495).
 */
import { describe, expect, test } from "bun:test";
import { exited } from "../../src/node/anti-entropy.ts";
import { PeerError } from "../../src/transport/peer-client.ts";
import { transportWords } from "../../src/transport/transport-words.ts";

describe("exited", () => {
  test("a refused connection: the member exited", () => {
    const why = transportWords(new Error("connection refused (n3:8082)"), 1000);
    expect(exited(new PeerError("n3:8082", why))).toBe(true);
    const bun = Object.assign(new Error("Unable to connect"), { code: "ECONNREFUSED" });
    expect(exited(new PeerError("n3:8082", transportWords(bun, 1000)))).toBe(true);
  });

  test("a timeout, a reset or anything else: not known to have exited", () => {
    const timeout = Object.assign(new Error("timeout"), { name: "TimeoutError" });
    expect(exited(new PeerError("n3:8082", transportWords(timeout, 1000)))).toBe(false);
    const reset = Object.assign(new Error("reset"), { code: "ECONNRESET" });
    expect(exited(new PeerError("n3:8082", transportWords(reset, 1000)))).toBe(false);
    expect(exited(new PeerError("n3:8082", "/internal/v1/digests: status 503", 503))).toBe(false);
    expect(exited(undefined)).toBe(false);
  });
});
