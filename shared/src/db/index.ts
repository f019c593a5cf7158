export * from "./database.js";
export * from "./errors.js";
export * from "./tables.js";
export * from "./keyset.js";
export * from "./statement.js";
export * from "./text.js";
export * from "./time.js";
