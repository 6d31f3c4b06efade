DROP TABLE notification_targets;
DROP TABLE notification_preferences;
DROP TABLE notification_deliveries;
DROP TABLE notifications;
DROP TYPE delivery_status;
DROP TYPE notification_channel;
