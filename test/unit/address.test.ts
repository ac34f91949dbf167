/** Member addresses are host:port and nothing else (src/core/address.ts). */
import { describe, expect, test } from "bun:test";
import { isHostPort } from "../../src/core/address.ts";

describe("isHostPort", () => {
  const good = [
    "127.0.0.1:8080",
    "node1.lan:9000",
    "mem:7000",
    "10.0.0.7:7946",
    "my_host-2:1",
    "[::1]:8080",
    "[fe80::1:2]:65535",
    `${"a".repeat(253)}:80`,
  ];
  const bad = [
    "",
    "host",
    ":80",
    "host:",
    "host:0",
    "host:65536",
    "host:+80",
    "host:80/path",
    "evil.com/x:80",
    "user@host:80",
    "user:pw@host:80",
    "host:80#frag",
    "host:80?q=1",
    "ho st:80",
    "host:80 ",
    "-host:80",
    "host.:80",
    "::1:80",
    "[::1]",
    "[not-ipv6]:80",
    "http://host:80",
    "host:80\n",
    `${"a".repeat(254)}:80`,
  ];
  for (const s of good) {
    test(`accepts ${JSON.stringify(s.slice(0, 40))}`, () => {
      expect(isHostPort(s)).toBe(true);
    });
  }
  for (const s of bad) {
    test(`refuses ${JSON.stringify(s.slice(0, 40))}`, () => {
      expect(isHostPort(s)).toBe(false);
    });
  }
});
