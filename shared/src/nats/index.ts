export * from "./names.js";
export * from "./connect.js";
export * from "./streams.js";
export * from "./acked-publisher.js";
export * from "./headers.js";
