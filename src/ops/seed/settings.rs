//! The settings domain: every user's profile and settings.

use diesel::prelude::*;

use super::generator::{LOCALES, PROJECT_NAMES, TIMEZONES, at, pick, tag};
use super::{Seeder, fill};
use crate::Result;
use crate::error::validate;
use crate::schema::{user_profiles, user_settings};
use crate::settings::user_profiles::ProfileInput;
use crate::settings::{DigestFrequency, Theme, UserSettings};
use rand::Rng;

pub(super) async fn seed(s: &mut Seeder<'_>) -> Result<()> {
    let g = s.g;
    let p = g.plan;
    let user_at = |u: u64| at(g.user_created(u));

    fill!(
        s,
        user_profiles,
        p.users,
        |u: u64, rows: &mut Vec<(u64, ProfileInput)>| {
            let mut rng = g.rng(tag("user_profiles"), u);
            let (first, last) = g.user_name(u);
            let profile = ProfileInput {
                display_name: format!("{first} {}.", &last[..1]),
                avatar_url: rng
                    .random_bool(0.5)
                    .then(|| format!("https://avatars.example.com/p/{}.png", g.user_id(u))),
                bio: rng.random_bool(0.5).then(|| {
                    format!(
                        "{first} works on {}.",
                        pick(&mut rng, PROJECT_NAMES).to_lowercase()
                    )
                }),
            };
            validate(&profile).expect("a valid profile");
            rows.push((u, profile));
        },
        // The domain's own insert type, as `user_profiles::upsert` writes it.
        |(u, profile): &(u64, ProfileInput)| {
            (
                user_profiles::user_id.eq(g.user_id(*u)),
                profile,
                (
                    user_profiles::created_at.eq(user_at(*u)),
                    user_profiles::updated_at.eq(user_at(*u)),
                ),
            )
        }
    );

    fill!(
        s,
        user_settings,
        p.users,
        |u: u64, rows: &mut Vec<(u64, serde_json::Value)>| {
            let mut rng = g.rng(tag("user_settings"), u);
            // The typed settings of the domain, stored as `user_settings` stores them.
            let settings = UserSettings {
                theme: pick(&mut rng, &[Theme::Light, Theme::Dark, Theme::System]),
                locale: pick(&mut rng, LOCALES).to_owned(),
                timezone: pick(&mut rng, TIMEZONES).to_owned(),
                email_notifications: rng.random_bool(0.8),
                push_notifications: rng.random_bool(0.5),
                digest: pick(
                    &mut rng,
                    &[
                        DigestFrequency::Never,
                        DigestFrequency::Daily,
                        DigestFrequency::Weekly,
                    ],
                ),
            };
            rows.push((
                u,
                serde_json::to_value(&settings).expect("settings serialise"),
            ));
        },
        |(u, settings): &(u64, serde_json::Value)| {
            (
                user_settings::user_id.eq(g.user_id(*u)),
                user_settings::settings.eq(settings),
                user_settings::created_at.eq(user_at(*u)),
                user_settings::updated_at.eq(user_at(*u)),
            )
        }
    );
    Ok(())
}
