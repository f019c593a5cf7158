// What Postgres text and jsonb cannot hold: NUL, and a UTF-16 surrogate without its pair (it has
// no UTF-8 form; the driver would store U+FFFD). With the `u` flag a paired surrogate is one code
// point and does not match. One definition for the API, which refuses such input, and the event
// log, which stores what was published with it replaced.
const UNSTORABLE = /[\u0000\uD800-\uDFFF]/u;
const UNSTORABLE_ALL = new RegExp(UNSTORABLE.source, "gu");

export const isStorableText = (s: string): boolean => !UNSTORABLE.test(s);

/** The text with every unstorable character replaced by U+FFFD. */
export const toStorableText = (s: string): string => s.replace(UNSTORABLE_ALL, "\uFFFD");
