export * from "./cluster-auth.ts";
export * from "./keyring.ts";
export * from "./tls-files.ts";
