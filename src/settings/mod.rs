//! Per-user settings and profiles. Tables created in
//! `migrations/2026-11-21-121000_create_user_settings_profiles`.

pub mod user_profiles;
pub mod user_settings;

pub use user_profiles::{Profile, ProfileInput};
pub use user_settings::{DigestFrequency, SettingsPatch, Theme, UserSettings};
