-- One database and one role per service, as devstack/postgres.sh does locally.
-- Passwords here are for the compose demo only.
CREATE ROLE gateway LOGIN PASSWORD 'gateway';
CREATE DATABASE gateway OWNER gateway;
CREATE ROLE validation LOGIN PASSWORD 'validation';
CREATE DATABASE validation OWNER validation;
CREATE ROLE cbs_debit LOGIN PASSWORD 'cbs_debit';
CREATE DATABASE cbs_debit OWNER cbs_debit;
CREATE ROLE rtgs_gateway LOGIN PASSWORD 'rtgs_gateway';
CREATE DATABASE rtgs_gateway OWNER rtgs_gateway;
CREATE ROLE notifications LOGIN PASSWORD 'notifications';
CREATE DATABASE notifications OWNER notifications;
CREATE ROLE audit LOGIN PASSWORD 'audit';
CREATE DATABASE audit OWNER audit;
REVOKE CONNECT ON DATABASE gateway, validation, cbs_debit, rtgs_gateway, notifications, audit FROM PUBLIC;
