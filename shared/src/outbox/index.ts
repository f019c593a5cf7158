export * from "./enqueue.js";
export * from "./relay.js";
export * from "./handoff.js";
export * from "./fifo.js";
