/** The RESP (Redis protocol) front of a member: `--resp-port`. */
export { RespFront, type RespFrontOptions } from "./server.ts";
export { WAITING_ON_CAS } from "./atomic.ts";
