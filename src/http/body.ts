/** Parse a JSON request body with a zod schema; anything wrong is a 400 DkvError. */
import type { z } from "zod";
import { DkvError } from "./errors.ts";

export async function parseBody<T>(req: Request, schema: z.ZodType<T>): Promise<T> {
  let json: unknown;
  try {
    json = await req.json();
  } catch {
    throw new DkvError("bad_request", "body is not valid JSON");
  }
  const out = schema.safeParse(json);
  if (!out.success) {
    const issue = out.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join(".")}` : "";
    throw new DkvError("bad_request", `invalid body${where}: ${issue?.message ?? "invalid"}`);
  }
  return out.data;
}
