/** The RESP (Redis protocol) front of a member: `--resp-port`. */
export { RespFront, type RespFrontOptions } from "./server.ts";
