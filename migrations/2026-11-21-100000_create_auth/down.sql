DROP TABLE verifications;
DROP TYPE verification_purpose;
DROP TABLE sessions;
DROP TABLE accounts;
DROP TABLE users;
