export * from "./hash.ts";
export * from "./hlc.ts";
export * from "./membership.ts";
export * from "./placement.ts";
export * from "./record.ts";
export * from "./view.ts";
export * from "./quorum.ts";
export * from "./duration.ts";
