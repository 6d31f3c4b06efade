//! User settings (typed JSONB with defaults and partial updates) and
//! profiles against a real PostgreSQL and against SQLite (every test runs on
//! both: `name::postgres`, `name::sqlite`).

mod common;

use database::settings::{
    DigestFrequency, ProfileInput, SettingsPatch, Theme, UserSettings, user_profiles, user_settings,
};
use database::{Error, UserId};

on_both_backends! {
    async fn settings_default_until_changed_and_patches_change_only_their_keys(t) {
        let ann = t.user("ann@example.com").await;
        let mut conn = t.conn().await;

        assert_eq!(
            user_settings::get(&mut conn, ann).await.unwrap(),
            UserSettings::default()
        );
        // An empty patch writes nothing.
        user_settings::update(&mut conn, ann, &SettingsPatch::default())
            .await
            .unwrap();
        assert_eq!(t.count("user_settings").await, 0);

        let s = user_settings::update(
            &mut conn,
            ann,
            &SettingsPatch {
                theme: Some(Theme::Dark),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            s,
            UserSettings {
                theme: Theme::Dark,
                ..Default::default()
            }
        );
        let s = user_settings::update(
            &mut conn,
            ann,
            &SettingsPatch {
                locale: Some("fr-FR".into()),
                timezone: Some("Europe/Paris".into()),
                digest: Some(DigestFrequency::Never),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(s.theme, Theme::Dark, "earlier keys survive");
        assert_eq!(s.locale, "fr-FR");
        assert_eq!(s.timezone, "Europe/Paris");
        assert_eq!(s.digest, DigestFrequency::Never);
        assert!(s.email_notifications, "untouched keys keep their default");
        assert_eq!(user_settings::get(&mut conn, ann).await.unwrap(), s);
        assert_eq!(t.count("user_settings").await, 1);

        user_settings::reset(&mut conn, ann).await.unwrap();
        assert_eq!(
            user_settings::get(&mut conn, ann).await.unwrap(),
            UserSettings::default()
        );
    }
}

on_both_backends! {
    async fn settings_reject_bad_input_and_unknown_users_writing_nothing(t) {
        let ann = t.user("ann@example.com").await;
        let mut conn = t.conn().await;

        let err = user_settings::update(
            &mut conn,
            ann,
            &SettingsPatch {
                theme: Some(Theme::Light),
                locale: Some("x".into()),
                timezone: Some("Not a zone".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["locale", "timezone"]);

        let err = user_settings::update(
            &mut conn,
            UserId::new(),
            &SettingsPatch {
                theme: Some(Theme::Light),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");
        assert_eq!(t.count("user_settings").await, 0);
    }
}

on_both_backends! {
    async fn concurrent_patches_of_different_keys_all_survive(t) {
        let ann = t.user("ann@example.com").await;
        let patches = vec![
            SettingsPatch {
                theme: Some(Theme::Dark),
                ..Default::default()
            },
            SettingsPatch {
                locale: Some("de-DE".into()),
                ..Default::default()
            },
            SettingsPatch {
                timezone: Some("Asia/Tokyo".into()),
                ..Default::default()
            },
            SettingsPatch {
                email_notifications: Some(false),
                ..Default::default()
            },
            SettingsPatch {
                push_notifications: Some(false),
                ..Default::default()
            },
            SettingsPatch {
                digest: Some(DigestFrequency::Daily),
                ..Default::default()
            },
        ];
        let tasks: Vec<_> = patches
            .into_iter()
            .map(|p| {
                let db = t.db.clone();
                tokio::spawn(async move {
                    let mut conn = db.conn().await.unwrap();
                    user_settings::update(&mut conn, ann, &p).await.unwrap();
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            user_settings::get(&mut t.conn().await, ann).await.unwrap(),
            UserSettings {
                theme: Theme::Dark,
                locale: "de-DE".into(),
                timezone: "Asia/Tokyo".into(),
                email_notifications: false,
                push_notifications: false,
                digest: DigestFrequency::Daily,
            }
        );
        assert_eq!(t.count("user_settings").await, 1);
    }
}

on_both_backends! {
    async fn profiles_are_created_replaced_and_validated(t) {
        let ann = t.user("ann@example.com").await;
        let mut conn = t.conn().await;

        let err = user_profiles::find(&mut conn, ann).await.unwrap_err();
        assert!(
            matches!(err, Error::NotFound { entity: "profile" }),
            "{err:?}"
        );

        let p = user_profiles::upsert(
            &mut conn,
            ann,
            &ProfileInput {
                display_name: "Ann".into(),
                avatar_url: Some("https://example.com/a.png".into()),
                bio: Some("Hello".into()),
            },
        )
        .await
        .unwrap();
        assert_eq!(p.display_name, "Ann");
        let p2 = user_profiles::upsert(
            &mut conn,
            ann,
            &ProfileInput {
                display_name: "Ann B.".into(),
                avatar_url: None,
                bio: None,
            },
        )
        .await
        .unwrap();
        assert_eq!(
            (p2.display_name.as_str(), p2.avatar_url, p2.bio),
            ("Ann B.", None, None)
        );
        assert_eq!(
            user_profiles::find(&mut conn, ann)
                .await
                .unwrap()
                .created_at,
            p.created_at
        );

        // Bad input: nothing changes.
        let err = user_profiles::upsert(
            &mut conn,
            ann,
            &ProfileInput {
                display_name: String::new(),
                avatar_url: Some("not a url".into()),
                bio: Some("b".repeat(1001)),
            },
        )
        .await
        .unwrap_err();
        assert_eq!(
            err.invalid_fields(),
            vec!["avatar_url", "bio", "display_name"]
        );
        assert_eq!(
            user_profiles::find(&mut conn, ann)
                .await
                .unwrap()
                .display_name,
            "Ann B."
        );
        let bob = t.user("bob@example.com").await;
        let err = user_profiles::upsert(
            &mut conn,
            bob,
            &ProfileInput {
                display_name: "x".repeat(101),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.invalid_fields(), vec!["display_name"]);

        let err = user_profiles::upsert(
            &mut conn,
            UserId::new(),
            &ProfileInput {
                display_name: "Ghost".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
        assert!(matches!(err, Error::NotFound { entity: "user" }), "{err:?}");
        assert_eq!(t.count("user_profiles").await, 1);
    }
}
