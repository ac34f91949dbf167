/** Failed peer calls in our own short words (issue 16, point 11): no runtime text leaks. */
import { describe, expect, test } from "bun:test";
import { transportWords } from "../../src/transport/transport-words.ts";
import { createPeerClient, PeerError } from "../../src/transport/index.ts";

/** A runtime error as Bun (code + message) or Deno (message, cause) makes it. */
function runtimeError(message: string, code?: string, cause?: string): Error {
  const e = new TypeError(message) as TypeError & { code?: string };
  if (code !== undefined) e.code = code;
  if (cause !== undefined) e.cause = new Error(cause);
  return e;
}

const CASES: [string, unknown, string][] = [
  [
    "Bun refused",
    runtimeError(
      "ECONNREFUSED: Unable to connect. Is the computer able to access the url?",
      "ECONNREFUSED",
    ),
    "connection refused",
  ],
  [
    "Deno refused",
    runtimeError(
      "error sending request",
      undefined,
      "tcp connect error: Connection refused (os error 111)",
    ),
    "connection refused",
  ],
  [
    "Bun reset",
    runtimeError(
      "ECONNRESET: The socket connection was closed unexpectedly. For more information, pass `verbose: true`",
      "ECONNRESET",
    ),
    "connection reset",
  ],
  [
    "Bun TLS",
    runtimeError(
      "EPROTO: The TLS handshake failed. Does the server speak TLS on this port?",
      "EPROTO",
    ),
    "TLS handshake failed",
  ],
  [
    "a certificate code",
    runtimeError("unable to verify the first certificate", "UNABLE_TO_VERIFY_LEAF_SIGNATURE"),
    "TLS handshake failed",
  ],
  ["DNS", runtimeError("getaddrinfo ENOTFOUND nowhere.invalid", "ENOTFOUND"), "host not found"],
  [
    "timeout",
    new DOMException("The operation timed out.", "TimeoutError"),
    "timed out after 250ms",
  ],
  ["anything else", new Error("Something odd happened in the runtime"), "connection failed"],
  ["not an error", "boom", "connection failed"],
];

describe("transportWords", () => {
  for (const [name, e, words] of CASES) {
    test(`${name} → ${words}`, () => {
      expect(transportWords(e, 250)).toBe(words);
    });
  }

  test("a PeerError's message has our words, never the runtime's text", async () => {
    const refused = runtimeError(
      "ECONNREFUSED: Unable to connect. Is the computer able to access the url?",
      "ECONNREFUSED",
    );
    const peers = createPeerClient(() => Promise.reject(refused));
    const err = await peers.health("127.0.0.1:1", 100).catch((e) => e);
    expect(err).toBeInstanceOf(PeerError);
    expect(err.message).toBe("connection refused");
    expect(err.message).not.toContain("Unable to connect");
  });
});
