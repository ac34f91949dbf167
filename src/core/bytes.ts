/** Byte helpers shared by the shells (request bodies, peer answers, the Deno https server). */

/** `chunks` (of `total` bytes in all) in one array; a single chunk is returned as it is. */
export function concatBytes(chunks: readonly Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}
