//! The editors' pages: server-rendered, working without JavaScript, with a
//! session cookie and a CSRF token on every form.

mod login;

use axum::Router;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().merge(login::routes())
}
