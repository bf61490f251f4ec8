-- Records an ingest read that the corpus already had (a re-ingest), apart from the duplicates
-- inside what it read. `duplicates` keeps counting both (as before); the Corpus page's
-- Duplicates tile counts only copies within the corpus, so it no longer adds up over re-ingests.
-- Ingests recorded before this column existed count 0 here.
ALTER TABLE ingests ADD COLUMN already_present INTEGER DEFAULT 0;
