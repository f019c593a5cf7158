export * from "./database.js";
export * from "./nats.js";
export * from "./wait.js";
export * from "./process.js";
export * from "./setup.js";
export * from "./nats-server.js";
export * from "./tcp-relay.js";
export * from "./nats-jwt.js";
