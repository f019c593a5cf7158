/**
 * A first-in-first-out line that takes from a moving head. `Array.prototype.shift` moves every
 * element once the array is too big for V8 to trim in place: emptying a 50,000-entry line that
 * way took 1.6 s of blocked event loop here, this way well under a millisecond.
 */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** The oldest item, or undefined when the line is empty. */
  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined; // let it be collected
    // Drop the taken slots once they are most of the array (amortised O(1) per item).
    if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  clear(): void {
    this.#items = [];
    this.#head = 0;
  }
}
