-- A validated constraint cannot be made NOT VALID again; nothing to undo
-- (the migration before drops the constraint on its way down).
SELECT 1;
