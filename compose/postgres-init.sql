-- One database and one role per service (and one for the schema registry),
-- as devstack/postgres.sh does locally. Run once, on an empty data volume.
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
CREATE ROLE schema_registry LOGIN PASSWORD 'schema_registry';
CREATE DATABASE schema_registry OWNER schema_registry;
REVOKE CONNECT ON DATABASE gateway, validation, cbs_debit, rtgs_gateway, notifications, audit, schema_registry FROM PUBLIC;
