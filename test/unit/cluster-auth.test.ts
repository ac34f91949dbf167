/**
 * Signing and checking internal calls with the cluster secret (src/security/cluster-auth.ts):
 * what passes, and each way a request or an answer is refused.
 */
import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { ClusterAuth, type RequestClaim } from "../../src/security/cluster-auth.ts";
import { parseKeyring, SECRETS_MAX } from "../../src/security/keyring.ts";
import { rng as seeded } from "./seeded.ts";

const enc = new TextEncoder();
const SECRET_A = enc.encode("a".repeat(32));
const SECRET_B = enc.encode("b".repeat(40));
const WRITE = "/internal/v1/kv/write";
const BODY = enc.encode(JSON.stringify({ to: "n2", records: [] }));

function member(id: string, secrets: Uint8Array[], clock = { t: 1_000_000 }, windowMs = 60_000) {
  const warnings: string[] = [];
  const rng = seeded(id.length * 7919);
  const auth = new ClusterAuth(secrets, {
    selfId: id,
    windowMs,
    now: () => clock.t,
    random: rng.next,
    warn: (m) => warnings.push(m),
  });
  return { auth, clock, warnings };
}

/** Sign on `from`, check on `to`: undefined when accepted, else the reason. */
function deliver(
  from: ClusterAuth,
  to: ClusterAuth,
  opts: { body?: Uint8Array; sentBody?: Uint8Array; path?: string; method?: string } = {},
): string | undefined {
  const body = opts.body ?? BODY;
  const { header } = from.signRequest("n2:1", "POST", WRITE, body);
  const claim = to.readClaim(header);
  if (typeof claim === "string") return claim;
  return to.verifyRequest(
    claim,
    opts.method ?? "POST",
    opts.path ?? WRITE,
    opts.sentBody ?? body,
  );
}

describe("requests", () => {
  test("signed with the shared secret: accepted, and the sender is the signer's id", () => {
    const a = member("n1", [SECRET_A]);
    const b = member("n2", [SECRET_A]);
    const { header } = a.auth.signRequest("n2:1", "POST", WRITE, BODY);
    const claim = b.auth.readClaim(header) as RequestClaim;
    expect(typeof claim).toBe("object");
    expect(claim.sender).toBe("n1");
    expect(b.auth.verifyRequest(claim, "POST", WRITE, BODY)).toBeUndefined();
    expect(b.auth.refused).toBe(0);
  });

  test("the MAC is HMAC-SHA256 of the v2 text and the body, as any runtime computes it", () => {
    // Pins the wire format (docs/protocol.md) and that Bun's native hasher, used under Bun,
    // agrees with node:crypto, used under Deno: a mixed cluster verifies both ways.
    const a = member("n1", [SECRET_A]);
    const { header, nonce } = a.auth.signRequest("n2:1", "POST", WRITE, BODY);
    const [, , ts, , mac] = header.split(" ");
    const text = `dkv-auth-v2 req\nPOST\n${WRITE}\n${ts}\n${nonce}\nn1\n`;
    const hmac = () => createHmac("sha256", SECRET_A).update(text);
    expect(mac).toBe(hmac().update(BODY).digest("base64url"));
    expect(mac).not.toBe(hmac().digest("base64url"));
    const answer = a.auth.signAnswer(200, "POST", WRITE, nonce, '{"ok":true}').split(" ")[3];
    const answerText = `dkv-auth-v2 res\n200\nPOST\n${WRITE}\n${nonce}\nn1\n{"ok":true}`;
    expect(answer).toBe(createHmac("sha256", SECRET_A).update(answerText).digest("base64url"));
  });

  test("an id with spaces, slashes and non-ASCII survives the header", () => {
    const a = member("node 1/é", [SECRET_A]);
    const b = member("n2", [SECRET_A]);
    const { header } = a.auth.signRequest("n2:1", "GET", "/internal/v1/status");
    const claim = b.auth.readClaim(header) as RequestClaim;
    expect(claim.sender).toBe("node 1/é");
    expect(b.auth.verifyRequest(claim, "GET", "/internal/v1/status", new Uint8Array(0)))
      .toBeUndefined();
  });

  test("a tampered body, path or method: bad signature", () => {
    const a = member("n1", [SECRET_A]);
    const b = member("n2", [SECRET_A]);
    const tampered = enc.encode(JSON.stringify({ to: "n2", records: [{ k: "x" }] }));
    expect(deliver(a.auth, b.auth, { sentBody: tampered })).toContain("bad signature");
    expect(deliver(a.auth, b.auth, { path: "/internal/v1/hints" })).toContain("bad signature");
    expect(deliver(a.auth, b.auth, { method: "PUT" })).toContain("bad signature");
    // The untouched request still passes.
    expect(deliver(a.auth, b.auth)).toBeUndefined();
  });

  test("another secret: bad signature", () => {
    const a = member("n1", [SECRET_B]);
    const b = member("n2", [SECRET_A]);
    expect(deliver(a.auth, b.auth)).toContain("bad signature");
  });

  test("a forged sender id (header edited): bad signature", () => {
    const a = member("n1", [SECRET_A]);
    const b = member("n2", [SECRET_A]);
    const { header } = a.auth.signRequest("n2:1", "POST", WRITE, BODY);
    const claim = b.auth.readClaim(header.replace(" n1 ", " n3 ")) as RequestClaim;
    expect(claim.sender).toBe("n3");
    expect(b.auth.verifyRequest(claim, "POST", WRITE, BODY)).toContain("bad signature");
  });

  test("outside the time window, either way: refused before the body is looked at", () => {
    const clockA = { t: 1_000_000 };
    const a = member("n1", [SECRET_A], clockA);
    const b = member("n2", [SECRET_A], { t: 1_000_000 }, 5000);
    clockA.t = 1_000_000 - 5001;
    expect(deliver(a.auth, b.auth)).toContain("signed 5001 ms behind this member's clock");
    clockA.t = 1_000_000 + 5001;
    expect(deliver(a.auth, b.auth)).toContain("5001 ms ahead of this member's clock");
    expect(deliver(a.auth, b.auth)).toContain("the window is ±5000 ms");
    clockA.t = 1_000_000 - 5000;
    expect(deliver(a.auth, b.auth)).toBeUndefined();
  });

  test("a replayed request is refused; requests out of order are not", () => {
    const a = member("n1", [SECRET_A]);
    const b = member("n2", [SECRET_A]);
    const first = a.auth.signRequest("n2:1", "POST", WRITE, BODY).header;
    const second = a.auth.signRequest("n2:1", "POST", WRITE, BODY).header;
    const check = (h: string) =>
      b.auth.verifyRequest(b.auth.readClaim(h) as RequestClaim, "POST", WRITE, BODY);
    expect(check(second)).toBeUndefined();
    expect(check(first)).toBeUndefined(); // late, but new
    expect(check(first)).toContain("replayed");
    expect(check(second)).toContain("replayed");
  });

  test("two senders that drew the same nonce source do not collide", () => {
    // Same seed, so the same random source: the receiver keys its window by sender too.
    const a = member("n1", [SECRET_A]);
    const c = member("n3", [SECRET_A]);
    const b = member("n2", [SECRET_A]);
    expect(a.auth.signRequest("n2:1", "GET", "/x").nonce).toBe(
      c.auth.signRequest("n2:1", "GET", "/x").nonce,
    );
    expect(deliver(a.auth, b.auth)).toBeUndefined();
    expect(deliver(c.auth, b.auth)).toBeUndefined();
  });

  test("rotation: the first secret signs, every secret verifies", () => {
    // Step 1: everyone verifies the new secret B, still signing with A.
    const old = member("n1", [SECRET_A]);
    const both = member("n2", [SECRET_A, SECRET_B]);
    expect(deliver(old.auth, both.auth)).toBeUndefined();
    // Step 2: members sign with B first, one by one; the others still take both.
    const rotated = member("n3", [SECRET_B, SECRET_A]);
    expect(deliver(rotated.auth, both.auth)).toBeUndefined();
    expect(deliver(both.auth, rotated.auth)).toBeUndefined();
    // Step 3: A removed everywhere: a member still signing with A is refused.
    const done = member("n4", [SECRET_B]);
    expect(deliver(rotated.auth, done.auth)).toBeUndefined();
    expect(deliver(old.auth, done.auth)).toContain("bad signature");
  });

  test("malformed or missing headers are refused with a reason", () => {
    const b = member("n2", [SECRET_A]).auth;
    const good = member("n1", [SECRET_A]).auth.signRequest("n2:1", "POST", WRITE, BODY).header;
    const [v, id, ts, nonce, mac] = good.split(" ");
    expect(b.readClaim(null)).toContain("no x-dkv-auth header");
    for (
      const h of [
        "",
        "v1",
        `v3 ${id} ${ts} ${nonce} ${mac}`,
        `${v} ${id} ${ts} ${nonce}`,
        `${v} ${id} ${ts} ${nonce} ${mac} extra`,
        `${v} ${id} -1 ${nonce} ${mac}`,
        `${v} ${id} ${ts} 1234.5 ${mac}`,
        `${v} ${id} ${ts} ${nonce} ${mac!.slice(1)}`,
        `${v} %E0%A4%A ${ts} ${nonce} ${mac}`,
        `${v}  ${ts} ${nonce} ${mac}`,
        "x".repeat(5000),
      ]
    ) {
      expect([h.slice(0, 40), b.readClaim(h)]).toEqual([h.slice(0, 40), expect.any(String)]);
    }
    // A member of an older build (v1: the MAC covered SHA-256 of the body) is told why.
    expect(b.readClaim(`v1 ${id} ${ts} ${nonce} ${mac}`)).toContain("v1 scheme of an older dkv");
  });
});

describe("answers", () => {
  function exchange(callerSecrets: Uint8Array[], responderSecrets: Uint8Array[]) {
    const caller = member("n1", callerSecrets).auth;
    const responder = member("n2", responderSecrets).auth;
    const { nonce } = caller.signRequest("n2:1", "POST", WRITE, BODY);
    const answer = enc.encode(JSON.stringify({ hadLive: [] }));
    const header = responder.signAnswer(200, "POST", WRITE, nonce, answer);
    return { caller, responder, nonce, answer, header };
  }

  test("a genuine answer is accepted", () => {
    const { caller, nonce, answer, header } = exchange([SECRET_A], [SECRET_A]);
    expect(caller.verifyAnswer(200, "POST", WRITE, nonce, header, answer)).toBeUndefined();
  });

  test("a forged, altered, missing or misdirected answer is refused", () => {
    const { caller, responder, nonce, answer, header } = exchange([SECRET_A], [SECRET_A]);
    const altered = enc.encode(JSON.stringify({ hadLive: [true] }));
    expect(caller.verifyAnswer(200, "POST", WRITE, nonce, header, altered)).toContain("bad");
    expect(caller.verifyAnswer(201, "POST", WRITE, nonce, header, answer)).toContain("bad");
    expect(caller.verifyAnswer(200, "POST", WRITE, nonce, null, answer)).toContain("without");
    // An old answer (to another request) replayed as the answer to this one.
    const other = caller.signRequest("n2:1", "POST", WRITE, BODY).nonce;
    expect(caller.verifyAnswer(200, "POST", WRITE, other, header, answer)).toContain(
      "another request",
    );
    // A request signature is not an answer signature.
    const asRequest = responder.signRequest("n1:1", "POST", WRITE, answer).header;
    expect(caller.verifyAnswer(200, "POST", WRITE, nonce, asRequest, answer)).toContain(
      "malformed",
    );
    const forged = exchange([SECRET_A], [SECRET_B]);
    expect(
      forged.caller.verifyAnswer(200, "POST", WRITE, forged.nonce, forged.header, forged.answer),
    ).toContain("bad signature");
  });
});

describe("refusals are counted and logged at most once a second", () => {
  test("three refusals in a second: one line; the next line says how many were skipped", () => {
    const { auth, clock, warnings } = member("n2", [SECRET_A]);
    auth.noteRefused("one");
    auth.noteRefused("two");
    auth.noteRefused("three");
    expect(auth.refused).toBe(3);
    expect(warnings).toEqual(["refused: one"]);
    clock.t += 1000;
    auth.noteRefused("four");
    expect(warnings).toEqual(["refused: one", "refused: four (and 2 more since the last line)"]);
  });
});

describe("parseKeyring", () => {
  test("one secret per non-empty line, whitespace and CRLF ignored, order kept", () => {
    const r = parseKeyring(`\n  ${"b".repeat(40)}  \r\n\r\n${"a".repeat(32)}\n`);
    expect(r.ok).toBe(true);
    if (r.ok) expect(r.secrets).toEqual([SECRET_B, SECRET_A]);
  });

  test("a short line, an empty file, too many lines: one-line reasons", () => {
    const short = parseKeyring(`${"a".repeat(32)}\nshort-secret\n`);
    expect(short).toEqual({ ok: false, message: expect.stringContaining("line 2 is 12 bytes") });
    expect(parseKeyring("\n \n")).toEqual({
      ok: false,
      message: expect.stringContaining("no secret"),
    });
    const many = Array.from({ length: SECRETS_MAX + 1 }, (_, i) => `${i}`.padEnd(32, "x"));
    expect(parseKeyring(many.join("\n"))).toEqual({
      ok: false,
      message: expect.stringContaining("more than 16"),
    });
  });

  test("bytes, not characters: 11 three-byte characters are 33 bytes", () => {
    expect(parseKeyring("€".repeat(11)).ok).toBe(true);
    expect(parseKeyring("€".repeat(10)).ok).toBe(false);
  });
});
