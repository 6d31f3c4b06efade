DROP TABLE verifications;
DROP TABLE sessions;
DROP TABLE accounts;
DROP TABLE users;
