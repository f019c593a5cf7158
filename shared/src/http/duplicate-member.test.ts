import { describe, expect, it } from "vitest";
import { duplicateMember } from "./duplicate-member.js";

describe("duplicateMember", () => {
  it("points at the first member whose name its object already has, at any depth", () => {
    const cases: [string, string | undefined][] = [
      ['{"email":"a@b.co","name":"A","email":"c@d.co"}', "/email"],
      ['{"userId":"x","items":[{"sku":"a","quantity":1},{"sku":"b","sku":"c"}]}', "/items/1/sku"],
      // One name however it is escaped.
      ['{"name":"A","\\u006eame":"B"}', "/name"],
      ['{"a/b":1,"a~b":2,"a/b":3}', "/a~1b"],
      ['[{"x":1},[{"y":2,"y":3}]]', "/1/0/y"],
      ['{"o":{"k":1},"p":{"k":1}}', undefined],
      ['{"a":{"a":{"a":1}}}', undefined],
      // Strings holding what looks like JSON are values, not members.
      ['{"name":"\\"name\\":1,","note":"{\\"name\\"","x":"}"}', undefined],
      ['{"a":[],"b":{},"c":[{}, {}],"d":""}', undefined],
      ['{"__proto__":1,"constructor":2,"__proto__":3}', "/__proto__"],
      // Not JSON: left to the parser's own error.
      ['{"a":1,"a', undefined],
      ["", undefined],
    ];
    for (const [text, pointer] of cases) expect(duplicateMember(text), text).toBe(pointer);
  });
});
