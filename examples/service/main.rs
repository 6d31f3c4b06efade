//! An HTTP service on the crate, as a backend engineer would write one:
//! `Db::from_env` and `migrate` at start-up, handlers that call repository
//! functions in a request context (`Ctx`: every tenant route runs inside its
//! tenant, so row-level security holds even where a query forgets its
//! filter), and `database::Error` mapped to HTTP once (`ApiError`).
//!
//! ```sh
//! db up && db setup                      # the project's PostgreSQL, its roles
//! cargo run --example service            # SERVICE_ADDR=127.0.0.1:3000 by default
//! curl -X POST localhost:3000/users -H 'content-type: application/json' -d '{"email":"ann@example.com"}'
//! ```
//!
//! `OTEL_TRACES_EXPORTER=console` prints every span of the crate (one line
//! each, with its attributes) as it closes; with `DB_SQLCOMMENTER=true` a
//! request's `traceparent` header reaches the server as a comment on each
//! of its statements. See the README's Observability.
//!
//! Without `DATABASE_URL` it connects as the project cluster's service role
//! (`app`) and migrates as its owner; elsewhere set `DATABASE_URL` to a role
//! without BYPASSRLS and `DATABASE_MIGRATION_URL` to the owner (or log in as
//! a privileged role with `DB_APP_ROLE=app`). A SQLite URL is refused at
//! start-up: the tenancy and workflow domains need PostgreSQL.
//!
//! Endpoints: `POST /users` (sign up), `POST /sessions` (sign in: a bearer
//! token), `GET /me`, `POST /tenants`, `POST /tenants/{slug}/todos`, `GET
//! /tenants/{slug}/todos?limit=&after=` (keyset pages),
//! `GET /tenants/{slug}/todos/{id}`, `GET /todos/{id}` (a personal todo),
//! `POST /tenants/{slug}/workflows`, `POST /workflows/{id}/runs`,
//! `GET /health`. Authentication is a bearer session token; the session
//! endpoint takes only an email because password checking is not the
//! data layer's business.

use std::net::SocketAddr;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use database::auth::{NewSession, NewUser, User, sessions, users};
use database::features::{CreateTodo, todos};
use database::keyset::Cursor;
use database::tenancy::{NewTenant, Tenant, tenant_members, tenants};
use database::workflows::{NewWorkflow, StartExecution, WorkflowGraph, executions, workflows};
use database::{Ctx, Db, Error, TodoId, TraceParent, WorkflowId};
use serde::Deserialize;
use serde_json::{Value, json};

/// `database::Error` as an HTTP response: the README's error table, once.
struct ApiError(Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let (status, code) = match &e {
            Error::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Error::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
            Error::Stale { .. } => (StatusCode::CONFLICT, "stale"),
            Error::IllegalTransition { .. } => (StatusCode::CONFLICT, "illegal_transition"),
            Error::TokenRejected(database::TokenRejection::Expired) => {
                (StatusCode::GONE, "token_expired")
            }
            Error::TokenRejected(_) => (StatusCode::BAD_REQUEST, "token_rejected"),
            Error::RetryTransaction { .. } | Error::Unavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
            }
            Error::Timeout { .. } => (StatusCode::GATEWAY_TIMEOUT, "timeout"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        };
        let mut body = json!({ "error": code });
        match &e {
            Error::Invalid(input) => {
                body["fields"] = input
                    .fields
                    .iter()
                    .map(|f| json!({ "field": f.field, "code": f.code, "message": f.message }))
                    .collect();
            }
            Error::Conflict { constraint, .. } => body["constraint"] = json!(constraint),
            Error::NotFound { entity } => body["entity"] = json!(entity),
            _ => {}
        }
        if status.is_server_error() {
            // Details of a 5xx go to the log, not to the client.
            tracing::error!(error = %e, "request failed");
        } else {
            body["message"] = json!(e.to_string());
        }
        let mut response = (status, Json(body)).into_response();
        if e.is_retryable() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The signed-in user, from `Authorization: Bearer <session token>`, and
/// the request's context: that user, and the caller's trace when it sent a
/// valid W3C `traceparent` header (with `DB_SQLCOMMENTER=true` the server
/// then sees it on every statement of the request).
struct Auth(User, Ctx);

impl FromRequestParts<Db> for Auth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, db: &Db) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                (
                    StatusCode::UNAUTHORIZED,
                    Json(json!({ "error": "unauthorized" })),
                )
                    .into_response()
            })?;
        let mut conn = db.conn().await.map_err(|e| ApiError(e).into_response())?;
        match sessions::find_valid_with_user(&mut conn, token).await {
            Ok((_, user)) => {
                let ctx = Ctx::new().user(user.id);
                let trace = parts
                    .headers
                    .get("traceparent")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| TraceParent::parse(v).ok());
                Ok(Auth(
                    user,
                    match trace {
                        Some(trace) => ctx.correlate(trace),
                        None => ctx,
                    },
                ))
            }
            Err(Error::NotFound { .. } | Error::TokenRejected(_)) => Err((
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "unauthorized" })),
            )
                .into_response()),
            Err(e) => Err(ApiError(e).into_response()),
        }
    }
}

async fn sign_up(
    State(db): State<Db>,
    Json(input): Json<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    let mut conn = db.conn().await?;
    Ok((
        StatusCode::CREATED,
        Json(users::create(&mut conn, &input).await?),
    ))
}

#[derive(Deserialize)]
struct SignIn {
    email: String,
}

async fn sign_in(
    State(db): State<Db>,
    Json(input): Json<SignIn>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut conn = db.conn().await?;
    let user = users::find_by_email(&mut conn, &input.email).await?;
    let created = sessions::create(
        &mut conn,
        &NewSession {
            user_id: user.id,
            ttl_seconds: 3600,
            ip_address: None,
            user_agent: None,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "token": created.token.expose(), "user": user })),
    ))
}

async fn me(Auth(user, _): Auth) -> Json<User> {
    Json(user)
}

async fn create_tenant(
    State(db): State<Db>,
    Auth(user, ctx): Auth,
    Json(input): Json<NewTenant>,
) -> ApiResult<(StatusCode, Json<Tenant>)> {
    // No tenant yet: the acting user only (the new tenant's first rows are
    // written inside it by `create_with_owner`).
    let db = db.with(ctx);
    let tenant = db
        .transaction(async |conn| tenants::create_with_owner(conn, &input, user.id).await)
        .await?;
    Ok((StatusCode::CREATED, Json(tenant)))
}

/// The request's context inside the tenant named by `slug`, when `user` is
/// one of its members (else 404: a tenant one does not belong to is not
/// visible). Every tenant route runs its queries through it, so row-level
/// security holds even where a query forgets its tenant filter.
async fn in_tenant(db: &Db, ctx: &Ctx, slug: &str, user: &User) -> Result<(Db, Tenant), Error> {
    // Before a tenant is chosen the user reads the directory and their own
    // memberships (the policies let them).
    let as_user = db.with(ctx.clone());
    let tenant = as_user
        .transaction(async |conn| {
            let tenant = tenants::find_by_slug(conn, slug).await?;
            tenant_members::find(conn, tenant.id, user.id)
                .await
                .map_err(|_| Error::NotFound { entity: "tenant" })?;
            Ok(tenant)
        })
        .await?;
    Ok((db.with(ctx.clone().in_tenant(tenant.id)), tenant))
}

#[derive(Deserialize)]
struct NewTodoBody {
    title: String,
    description: Option<String>,
}

async fn create_todo(
    State(db): State<Db>,
    Auth(user, ctx): Auth,
    Path(slug): Path<String>,
    Json(body): Json<NewTodoBody>,
) -> ApiResult<(StatusCode, Json<todos::Todo>)> {
    let (db, tenant) = in_tenant(&db, &ctx, &slug, &user).await?;
    let input = CreateTodo {
        title: body.title,
        description: body.description,
        tenant_id: Some(tenant.id),
    };
    let todo = db
        .transaction(async |conn| todos::create(conn, user.id, &input).await)
        .await?;
    Ok((StatusCode::CREATED, Json(todo)))
}

#[derive(Deserialize)]
struct PageQuery {
    limit: Option<i64>,
    /// The `next` cursor of the previous page, as JSON.
    after: Option<String>,
}

/// A page of the tenant's todos: full pages, in the tenant's index order.
async fn list_todos(
    State(db): State<Db>,
    Auth(user, ctx): Auth,
    Path(slug): Path<String>,
    Query(page): Query<PageQuery>,
) -> ApiResult<Json<Value>> {
    let after: Option<Cursor<TodoId>> = match page.after.as_deref() {
        None => None,
        Some(raw) => Some(
            serde_json::from_str(raw)
                .map_err(|e| Error::invalid("after", "cursor", e.to_string()))?,
        ),
    };
    let (db, tenant) = in_tenant(&db, &ctx, &slug, &user).await?;
    let limit = page.limit.unwrap_or(20);
    let page = db
        .transaction(async |conn| todos::list_for_tenant(conn, tenant.id, after, limit).await)
        .await?;
    Ok(Json(json!({ "items": page.items, "next": page.next })))
}

/// One of the tenant's todos.
async fn get_tenant_todo(
    State(db): State<Db>,
    Auth(user, ctx): Auth,
    Path((slug, id)): Path<(String, TodoId)>,
) -> ApiResult<Json<todos::Todo>> {
    let (db, _) = in_tenant(&db, &ctx, &slug, &user).await?;
    Ok(Json(
        db.transaction(async |conn| todos::find(conn, user.id, id).await)
            .await?,
    ))
}

/// One of the user's personal todos (no tenant).
async fn get_todo(
    State(db): State<Db>,
    Auth(user, ctx): Auth,
    Path(id): Path<TodoId>,
) -> ApiResult<Json<todos::Todo>> {
    let db = db.with(ctx);
    Ok(Json(
        db.transaction(async |conn| todos::find(conn, user.id, id).await)
            .await?,
    ))
}

#[derive(Deserialize)]
struct NewWorkflowBody {
    name: String,
    graph: WorkflowGraph,
}

async fn create_workflow(
    State(db): State<Db>,
    Auth(user, ctx): Auth,
    Path(slug): Path<String>,
    Json(body): Json<NewWorkflowBody>,
) -> ApiResult<(StatusCode, Json<workflows::Workflow>)> {
    let (db, tenant) = in_tenant(&db, &ctx, &slug, &user).await?;
    let input = NewWorkflow {
        name: body.name,
        description: None,
        graph: body.graph,
    };
    let workflow = db
        .transaction(async |conn| workflows::create(conn, tenant.id, Some(user.id), &input).await)
        .await?;
    Ok((StatusCode::CREATED, Json(workflow)))
}

#[derive(Deserialize)]
struct RunBody {
    tenant: String,
    #[serde(default)]
    input: Option<Value>,
}

async fn run_workflow(
    State(db): State<Db>,
    Auth(user, ctx): Auth,
    Path(id): Path<WorkflowId>,
    Json(body): Json<RunBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let (db, tenant) = in_tenant(&db, &ctx, &body.tenant, &user).await?;
    let input = StartExecution {
        user_id: Some(user.id),
        input: body.input.unwrap_or_else(|| json!({})),
        ..Default::default()
    };
    let run = db
        .transaction(async |conn| executions::start(conn, tenant.id, id, &input).await)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "execution": run.execution, "steps": run.steps })),
    ))
}

async fn health(State(db): State<Db>) -> ApiResult<Json<Value>> {
    let h = db.health().await?;
    Ok(Json(
        json!({ "latency_us": h.latency.as_micros() as u64, "pool_size": h.pool.size }),
    ))
}

/// The routes, over a `Db` (the integration test serves them too).
pub fn router(db: Db) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/users", post(sign_up))
        .route("/sessions", post(sign_in))
        .route("/me", get(me))
        .route("/tenants", post(create_tenant))
        .route("/tenants/{slug}/todos", post(create_todo).get(list_todos))
        .route("/tenants/{slug}/todos/{id}", get(get_tenant_todo))
        .route("/todos/{id}", get(get_todo))
        .route("/tenants/{slug}/workflows", post(create_workflow))
        .route("/workflows/{id}/runs", post(run_workflow))
        .with_state(db)
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if std::env::var("OTEL_TRACES_EXPORTER").as_deref() == Ok("console") {
        // OpenTelemetry's variable, honoured without an OpenTelemetry SDK:
        // each span (every statement, transaction, pool wait and migration)
        // printed as one line with its attributes when it closes. A service
        // exporting for real adds `tracing-opentelemetry` as a layer instead.
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let db = Db::from_env()?;
    let report = db.migrate().await?;
    for name in &report.applied {
        tracing::info!("applied migration {name}");
    }
    // Refuse to start on a login that would bypass row-level security (a
    // superuser, BYPASSRLS, a table's owner), not on the first request.
    db.check_tenant_roles().await?;
    let addr: SocketAddr = std::env::var("SERVICE_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:3000".into())
        .parse()?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // The test reads this line to learn the port when SERVICE_ADDR ends in :0.
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(db)).await?;
    Ok(())
}

/// The handlers on a database of their own per test (`#[database::test]`,
/// feature `testing`): run by `cargo test` through `tests/service.rs`,
/// which includes this file.
#[cfg(test)]
mod tests {
    use super::*;

    /// The README's "Testing your service" example.
    #[database::test]
    async fn signing_up_twice_with_one_email_is_a_409(db: Db) {
        let ann = || {
            Json(NewUser {
                email: "ann@example.com".into(),
                ..NewUser::default()
            })
        };
        let Ok((status, Json(user))) = sign_up(State(db.clone()), ann()).await else {
            panic!("the first sign-up failed");
        };
        assert_eq!(
            (status, user.email.as_str()),
            (StatusCode::CREATED, "ann@example.com")
        );
        let Err(again) = sign_up(State(db), ann()).await else {
            panic!("the second sign-up succeeded");
        };
        assert_eq!(again.into_response().status(), StatusCode::CONFLICT);
    }

    /// A tenant's owner (`fixtures`) sees its tenant through the service's role.
    #[database::test]
    async fn a_member_reaches_their_tenant_and_no_other(t: &database::testing::TestDb) {
        let rows = database::testing::fixtures::Fixtures::new(1);
        let (acme, other) = (rows.tenant().create(t).await, rows.tenant().create(t).await);
        let db = t.service_db();
        let ctx = Ctx::new().user(acme.owner.id);
        let (_, tenant) = in_tenant(&db, &ctx, &acme.tenant.slug, &acme.owner)
            .await
            .unwrap();
        assert_eq!(tenant.id, acme.tenant.id);
        let refused = in_tenant(&db, &ctx, &other.tenant.slug, &acme.owner)
            .await
            .unwrap_err();
        assert!(matches!(refused, Error::NotFound { .. }), "{refused:?}");
    }
}
