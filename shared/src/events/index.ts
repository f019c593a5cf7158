export * from "./envelope.js";
export * from "./catalog.js";
export * from "./create.js";
export * from "./decode.js";
export * from "./asyncapi.js";
export * from "./trace.js";
