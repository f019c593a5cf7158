export * from "./retry.js";
export * from "./shutdown.js";
export * from "./service.js";
