-- Customers' names come from users.registered, whose names are in Unicode NFC from this release
-- on (and are normalised again when applied). Rows written before keep the form they were typed in:
-- this brings them to the same form. One pass over the table; only rows that change are written.
UPDATE "customers" SET "name" = normalize("name", NFC) WHERE "name" IS NOT NFC NORMALIZED;
