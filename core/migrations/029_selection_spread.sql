-- 029_selection_spread: the spread of a selection's coverage over several random (and, with a map,
-- stratified) draws of the same budget (core.select.spread), stored with the selection when it is
-- made (core.select.run.select). Selections made before get the spread the Map page measured for
-- them, kept until now in ui_state under 'map.coverage_spread.<id>'; the others have none (NULL).
-- Frozen.
ALTER TABLE selections ADD COLUMN coverage_spread JSON;   -- {"draws", "budget", "candidates", "selection", "random", "stratified"}
UPDATE selections SET coverage_spread = (SELECT u.value FROM ui_state u
                                         WHERE u.key = 'map.coverage_spread.' || CAST(selections.id AS VARCHAR));
DELETE FROM ui_state WHERE key LIKE 'map.coverage_spread.%';
