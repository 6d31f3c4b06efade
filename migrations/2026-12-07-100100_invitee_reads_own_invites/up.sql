-- Before joining a tenant, an invitee reads the pending invitations sent to
-- their own address, with no tenant chosen (a "your invitations" page): a
-- policy branch on the acting user (`app.user_id`), not a bypass. Only a
-- verified address counts (anyone can sign up with an address they do not
-- hold), and only to read: accepting runs in the invitation's tenant, as
-- before. The sub-select is evaluated once per statement.
SET lock_timeout = '5s';
CREATE POLICY invitee ON tenant_invites FOR SELECT
    USING (
        accepted_at IS NULL AND revoked_at IS NULL
        AND lower(email) = (
            SELECT lower(u.email) FROM users u
            WHERE u.id = (SELECT app_current_user()) AND u.email_verified
        )
    );
