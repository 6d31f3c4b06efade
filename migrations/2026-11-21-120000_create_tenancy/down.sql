DROP TABLE tenant_activity;
DROP TABLE tenant_invites;
DROP TABLE tenant_members;
DROP TYPE tenant_role;
