export * from "./cluster-auth.ts";
export * from "./keyring.ts";
export * from "./tls-files.ts";
export * from "./client-tokens.ts";
