export * from "./enqueue.js";
export * from "./relay.js";
