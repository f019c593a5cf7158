export * from "./runner.js";
export * from "./dead-letter.js";
