SET lock_timeout = '5s';
DROP POLICY invitee ON tenant_invites;
