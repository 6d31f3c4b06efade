//! 500 tests, each on a database of its own: insert a user, read it back.
use database::Db;
use database::auth::{NewUser, users};

macro_rules! tests {
    ($($name:ident)*) => {$(
        #[database::test]
        async fn $name(db: Db) {
            let mut conn = db.conn().await.unwrap();
            let new = NewUser { email: "ann@example.com".into(), ..NewUser::default() };
            let ann = users::create(&mut conn, &new).await.unwrap();
            assert_eq!(users::find(&mut conn, ann.id).await.unwrap().email, new.email);
        }
    )*};
}

include!(concat!(env!("CARGO_MANIFEST_DIR"), "/../names.rs"));
