export * from "./messages.ts";
export type { View } from "../core/view.ts";
export * from "./peer-client.ts";
