-- 016_model_prices: prices per model set on the Generate page's Models panel. Frozen.
--
-- USD per million prompt (input) and completion (output) tokens, and the share of that price a
-- Batch API request costs (batch_discount, 0.5 = half). They override the built-in table and
-- $SHOAL_PRICES_FILE for the app's cost estimates and the costs recorded for its jobs
-- (core.model_prices). Prices only: never a key.

CREATE TABLE model_prices (
    model VARCHAR PRIMARY KEY,
    input_per_m DOUBLE NOT NULL,
    output_per_m DOUBLE NOT NULL,
    batch_discount DOUBLE,          -- NULL: the provider's share (core.prices.batch_discount)
    updated_at TIMESTAMP DEFAULT current_timestamp
);
