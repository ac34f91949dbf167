export * from "./cluster-auth.ts";
export * from "./keyring.ts";
