-- tenant_invites::pending_for_invitee and the `invitee` policy: the pending
-- invitations sent to one address, across tenants.
CREATE INDEX CONCURRENTLY tenant_invites_pending_email_idx ON tenant_invites (lower(email))
    WHERE accepted_at IS NULL AND revoked_at IS NULL;
