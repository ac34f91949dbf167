/**
 * The plain GET/SET path's words (src/resp/commands.ts keyAt, valueAt): read from the request
 * buffer as the command table's path reads them from a view, and owned by the caller (the buffer
 * is reused for the next requests).
 */
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { Utf8Text, valueOf } from "../../src/core/record.ts";
import { type Env, keyAt, valueAt } from "../../src/resp/commands.ts";

const env = { ctx: { config: { keyBytesMax: 64, valueBytesMax: 256 } } } as unknown as Env;

/** The words at offset 3 of a buffer with other bytes around them. */
function inBuffer(bytes: Uint8Array): Uint8Array {
  const buf = new Uint8Array(bytes.length + 6).fill(0x2a);
  buf.set(bytes, 3);
  return buf;
}

function thrown(f: () => unknown): string | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

describe("keyAt and valueAt", () => {
  test("property: a value is valueOf's canonical form, kept when the buffer is overwritten", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 200 }),
          fc.string({ unit: "grapheme", maxLength: 60 }).map((s) => new TextEncoder().encode(s)),
        ),
        (bytes) => {
          const buf = inBuffer(bytes);
          const out = valueAt(env, "k", buf, 3, bytes.length);
          const want = valueOf(bytes.slice());
          buf.fill(0x21);
          // ASCII comes as its bytes (copied out: the string is made on first use, after the
          // buffer changed); anything else as its canonical form at once.
          if (bytes.every((b) => b < 128) !== out instanceof Utf8Text) return false;
          const got = out instanceof Utf8Text ? out.text : out;
          if (typeof want === "string") return got === want;
          return got instanceof Uint8Array && Buffer.from(got).equals(Buffer.from(want));
        },
      ),
      { seed: 1616, numRuns: 2000 },
    );
  });

  test("property: a key is its UTF-8 text, or the same error the table's path gives", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 80 }),
          fc.string({ unit: "grapheme", maxLength: 30 }).map((s) => new TextEncoder().encode(s)),
        ),
        fc.boolean(),
        (bytes, write) => {
          const buf = inBuffer(bytes);
          let got: string | undefined;
          const error = thrown(() => (got = keyAt(env, buf, 3, bytes.length, write)));
          buf.fill(0x21);
          let text: string | undefined;
          try {
            text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
          } catch {
            return error === "ERR key is not valid UTF-8: dkv keys are UTF-8 text";
          }
          const bytesMax = write ? 64 : 65536;
          if (text.length === 0) return error === "ERR key must not be empty";
          if (text === "all-data" || text === "_batch") return error?.includes("reserved") ?? false;
          if (bytes.length > bytesMax) return error?.startsWith("ERR key is ") ?? false;
          return error === undefined && got === text;
        },
      ),
      { seed: 1617, numRuns: 2000 },
    );
  });

  test("ASCII and non-ASCII keys, a key past --max-key-bytes", () => {
    const enc = new TextEncoder();
    const buf = inBuffer(enc.encode("kéy"));
    expect(keyAt(env, buf, 3, 4, true)).toBe("kéy");
    const ascii = inBuffer(enc.encode("key:1"));
    expect(keyAt(env, ascii, 3, 5, false)).toBe("key:1");
    const long = inBuffer(enc.encode("k".repeat(65)));
    expect(thrown(() => keyAt(env, long, 3, 65, true))).toBe(
      "ERR key is 65 bytes; the limit is 64 (--max-key-bytes)",
    );
    expect(keyAt(env, long, 3, 65, false)).toBe("k".repeat(65));
  });
});
