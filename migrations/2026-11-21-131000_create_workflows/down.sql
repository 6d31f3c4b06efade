DROP TABLE execution_steps;
DROP TABLE executions;
DROP TABLE workflows;
DROP TYPE step_status;
DROP TYPE execution_status;
