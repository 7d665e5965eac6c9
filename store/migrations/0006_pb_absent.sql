-- 0006: tell an absent pb claim from an explicit 0. Until now both were
-- stored as 0 (and signed tokens dropped a 0 pb as well), so a stored 0 is
-- read as "absent": those webtasks get the default, parse on arity (2).
-- From now on pb is NULL when the claim was absent and 0 only when it was
-- explicitly 0 (never parse).
ALTER TABLE webtasks ADD COLUMN pb_claim INTEGER CHECK (pb_claim IS NULL OR pb_claim IN (0, 1, 2));
UPDATE webtasks SET pb_claim = pb WHERE pb IN (1, 2);
ALTER TABLE webtasks DROP COLUMN pb;
ALTER TABLE webtasks RENAME COLUMN pb_claim TO pb;
