/**
 * Member addresses: `host:port` and nothing else. Addresses travel in gossip and are dialled as
 * `http(s)://${address}/...`, so anything that would change the URL's meaning (a path, user info,
 * a query or fragment, whitespace) is refused at the boundary (flags and every internal message).
 *
 * host: a DNS name or IPv4 address (letters, digits, `-`, `_`, `.`; at most 253 characters), or
 * a bracketed IPv6 address; port: 1–65535, no leading `+` or sign.
 */

const HOST_PORT_RE =
  /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,251}[A-Za-z0-9_])?):(\d{1,5})$/;

/** Longest address accepted: a 253-character host, a colon and a 5-digit port. */
export const ADDRESS_CHARS_MAX = 259;

/** The port of a `host:port` string (any 1–5 digits), or undefined if it is not one. */
export function hostPortPort(s: string): number | undefined {
  if (s.length > ADDRESS_CHARS_MAX) return undefined;
  const m = HOST_PORT_RE.exec(s);
  return m === null ? undefined : Number(m[1]);
}

/** True when `s` is `host:port` as above, with a port 1–65535. */
export function isHostPort(s: string): boolean {
  const port = hostPortPort(s);
  return port !== undefined && port >= 1 && port <= 65535;
}
