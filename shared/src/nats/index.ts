export * from "./names.js";
export * from "./connect.js";
export * from "./streams.js";
