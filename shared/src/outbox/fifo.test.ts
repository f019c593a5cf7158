import { describe, expect, it } from "vitest";
import { Fifo } from "./fifo.js";

describe("Fifo", () => {
  it("gives items back in order across its compactions, interleaved with pushes", () => {
    const line = new Fifo<number>();
    const taken: number[] = [];
    let next = 0;
    // Push 3, take 2, repeatedly: the head passes the compaction threshold many times.
    for (let round = 0; round < 5000; round++) {
      for (let i = 0; i < 3; i++) line.push(next++);
      for (let i = 0; i < 2; i++) taken.push(line.shift()!);
    }
    expect(line.length).toBe(5000);
    while (line.length > 0) taken.push(line.shift()!);
    expect(taken).toEqual(Array.from({ length: next }, (_, i) => i));
    expect(line.shift()).toBeUndefined();
    expect(line.length).toBe(0);
  });

  it("is empty again after clear, and usable", () => {
    const line = new Fifo<string>();
    line.push("a");
    line.push("b");
    expect(line.shift()).toBe("a");
    line.clear();
    expect(line.length).toBe(0);
    expect(line.shift()).toBeUndefined();
    line.push("c");
    expect(line.shift()).toBe("c");
  });
});
