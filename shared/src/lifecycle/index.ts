export * from "./retry.js";
export * from "./shutdown.js";
export * from "./service.js";
export * from "./system-events.js";
export * from "./main.js";
export * from "./node-options.js";
export * from "./version.js";
export * from "./is-main.js";
