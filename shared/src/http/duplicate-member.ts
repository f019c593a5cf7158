import { pointerSegment as escape } from "./validation.js";

/** An object's members seen so far (`keys`) or an array's position, and where it is. */
interface Frame {
  path: string;
  keys?: Set<string>;
  key?: string;
  index: number;
}

/**
 * The JSON Pointer of the first member whose name its object already has (`{"email": "a",
 * "email": "b"}`: "/email"), or undefined. JSON.parse keeps the last of them silently, so what a
 * proxy or log that reads the first saw is not what was stored; RFC 7493 (I-JSON) forbids them.
 * One pass over the text, without building values; text that is not JSON gets undefined here and
 * its own error from the parser.
 */
export function duplicateMember(text: string): string | undefined {
  const stack: Frame[] = [];
  let expectKey = false;
  const childPath = () => {
    const top = stack.at(-1);
    if (!top) return "";
    return top.keys ? `${top.path}/${escape(top.key ?? "")}` : `${top.path}/${top.index}`;
  };
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch === 0x22) {
      let j = i + 1;
      let escaped = false;
      for (; j < text.length; j++) {
        const c = text.charCodeAt(j);
        if (c === 0x5c) {
          escaped = true;
          j++;
        } else if (c === 0x22) break;
      }
      if (j >= text.length) return undefined;
      if (expectKey) {
        const top = stack.at(-1)!;
        let key: string;
        try {
          // "\u0061" and "a" are one name.
          key = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        } catch {
          return undefined;
        }
        if (top.keys!.has(key)) return `${top.path}/${escape(key)}`;
        top.keys!.add(key);
        top.key = key;
        expectKey = false;
      }
      i = j;
    } else if (ch === 0x7b) {
      stack.push({ path: childPath(), keys: new Set(), index: 0 });
      expectKey = true;
    } else if (ch === 0x5b) {
      stack.push({ path: childPath(), index: 0 });
      expectKey = false;
    } else if (ch === 0x7d || ch === 0x5d) {
      stack.pop();
      expectKey = false;
    } else if (ch === 0x2c) {
      const top = stack.at(-1);
      if (top?.keys) expectKey = true;
      else if (top) top.index++;
    }
  }
  return undefined;
}
