export * from "./runner.js";
export * from "./dead-letter.js";
export * from "./pull-loop.js";
export * from "./statement-handler.js";
export * from "./oldest-unacked.js";
