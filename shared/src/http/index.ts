export * from "./problem.js";
export * from "./validation.js";
export * from "./cursor.js";
export * from "./app.js";
export * from "./server.js";
export * from "./openapi.js";
export * from "./idempotency.js";
