DROP TABLE subscription_events;
DROP TYPE subscription_event_outcome;
DROP TABLE subscriptions;
DROP TYPE subscription_status;
