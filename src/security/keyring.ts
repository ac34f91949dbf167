/**
 * The cluster secret file (`--cluster-secret-file`): one secret per non-empty line, surrounding
 * whitespace ignored, each at least 32 bytes of UTF-8. The first line signs; every line verifies,
 * so a secret can be rotated without downtime (docs/security.md). Parsing is pure; reading the
 * file is the caller's (src/platform/).
 */

/** Shortest secret accepted: 256 bits, the HMAC-SHA256 key size. */
export const SECRET_BYTES_MIN = 32;
/** Secrets in one file at most (each verification may try all of them). */
export const SECRETS_MAX = 16;
/** Largest secret file read. */
export const SECRET_FILE_BYTES_MAX = 64 * 1024;

export type KeyringResult =
  | { readonly ok: true; readonly secrets: readonly Uint8Array[] }
  | { readonly ok: false; readonly message: string };

const utf8 = new TextEncoder();

/** The secrets of a secret file's text, or why it cannot be used (never quoting a secret). */
export function parseKeyring(text: string): KeyringResult {
  const secrets: Uint8Array[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line.length === 0) continue;
    const bytes = utf8.encode(line);
    if (bytes.length < SECRET_BYTES_MIN) {
      return {
        ok: false,
        message: `line ${i + 1} is ${bytes.length} bytes; a secret needs at least ` +
          `${SECRET_BYTES_MIN} (make one with: openssl rand -hex 32)`,
      };
    }
    if (secrets.length === SECRETS_MAX) {
      return {
        ok: false,
        message: `more than ${SECRETS_MAX} secrets; keep at most ${SECRETS_MAX}`,
      };
    }
    secrets.push(bytes);
  }
  if (secrets.length === 0) {
    return { ok: false, message: "no secret in the file (make one with: openssl rand -hex 32)" };
  }
  return { ok: true, secrets };
}
