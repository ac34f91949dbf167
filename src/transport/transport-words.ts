/**
 * A failed peer call in our own short words: the runtime's text ("ECONNREFUSED: Unable to
 * connect. Is the computer able to access the url?") never reaches a 503 message, a log line or
 * /cluster/status (issue 16, point 11). Pure: it reads the error's name, code, message and cause.
 *
 * Bun sets `code` (ECONNREFUSED, ECONNRESET, EPROTO, ENOTFOUND, certificate codes); Deno puts the
 * OS text in the message or cause ("Connection refused (os error 111)", "invalid peer
 * certificate"). The first rule that matches wins; TLS comes before reset, since a TLS failure
 * can show as a reset.
 */
const RULES: readonly [RegExp, string][] = [
  [/ECONNREFUSED|ConnectionRefused|connection refused/i, "connection refused"],
  [/EPROTO|tls|ssl|cert|handshake|invalid HTTP version/i, "TLS handshake failed"],
  [/ECONNRESET|ConnectionClosed|closed unexpectedly|connection reset|EPIPE/i, "connection reset"],
  [/ENOTFOUND|getaddrinfo|EAI_AGAIN|dns|failed to lookup/i, "host not found"],
  [/EHOSTUNREACH|ENETUNREACH|unreachable/i, "host unreachable"],
  [/ETIMEDOUT|timed out/i, "timed out"],
];

/** The short words for a failed call: `timed out after 2000ms`, `connection refused`, .... */
export function transportWords(e: unknown, timeoutMs: number): string {
  const err = e as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown } | null;
  if (err?.name === "TimeoutError") return `timed out after ${timeoutMs}ms`;
  if (err?.name === "AbortError") return "aborted";
  const text = [err?.code, err?.message, String(err?.cause ?? "")].join(" ");
  for (const [re, words] of RULES) if (re.test(text)) return words;
  return "connection failed";
}
