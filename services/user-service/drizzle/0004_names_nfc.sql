-- POST /users stores names in Unicode NFC from this release on. Rows written before keep the form
-- they were typed in (e + U+0301 for é): this brings them to the same form, so a name has one
-- stored form whenever it was registered. One pass over the table; only rows that change are written.
UPDATE "users" SET "name" = normalize("name", NFC) WHERE "name" IS NOT NFC NORMALIZED;
