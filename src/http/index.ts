export * from "./app.ts";
export * from "./context.ts";
export * from "./errors.ts";
export * from "./internal-routes.ts";
export * from "./public-routes.ts";
export * from "./validate.ts";
