-- orderCount changes right after a user is inserted: room left on each page lets that update
-- stay on the page (a HOT update, no new index entries) instead of copying the row elsewhere.
ALTER TABLE "users" SET (fillfactor = 80);
