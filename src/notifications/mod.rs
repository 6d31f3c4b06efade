//! Notifications: what a user is told (`notifications`), its delivery per
//! channel (`notification_deliveries`), what the user wants to receive
//! (`notification_preferences`) and where (`notification_targets`). Tables
//! created in `migrations/2026-11-21-140200_create_notifications`.

pub mod notification_deliveries;
pub mod notification_preferences;
pub mod notification_targets;
// One table, one file: the `notifications` table lives in notifications.rs.
#[allow(clippy::module_inception)]
pub mod notifications;

pub use notification_deliveries::{
    ClaimedDelivery, DeliveryAttempt, DeliveryClaim, DeliveryStatus, NotificationDelivery,
};
pub use notification_preferences::{NotificationPreference, SetPreference};
pub use notification_targets::{NotificationTarget, RegisterTarget};
pub use notifications::{Notification, NotificationChannel, SendNotification, Sent};
