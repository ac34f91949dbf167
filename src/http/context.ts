/** What the HTTP routes need from the member (node or orchestrator) that serves them. */
import type { Config } from "../config.ts";
import type { View } from "../core/view.ts";
import type { Logger } from "../log.ts";
import type { Coordinator } from "../node/coordinator.ts";
import type { Store } from "../node/store.ts";

export interface MemberContext {
  readonly role: "orchestrator" | "node";
  readonly selfId: string;
  readonly advertise: string;
  readonly incarnation: number;
  readonly config: Config;
  readonly coordinator: Coordinator;
  /** Present on data nodes only. */
  readonly store?: Store;
  readonly log: Logger;
  /** The current membership view, if any. */
  view(): View | undefined;
  /** The ring derived from the view (precomputed partition table). */
  ring(): import("../core/view.ts").Ring | undefined;
}
