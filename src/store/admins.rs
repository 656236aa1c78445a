//! Editors, their API tokens and their web sessions. Only hashes of
//! passwords, tokens and session ids are stored.

use super::{now_ms, Store, StoreError};

/// An authenticated editor.
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Editor {
    pub id: i64,
    pub email: String,
}

/// How finely a token's last use is recorded.
const TOKEN_USE_RESOLUTION_MS: i64 = 60_000;

/// An API token as listed: never its secret, which is not kept.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiTokenInfo {
    pub id: i64,
    pub editor: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
}

/// A web session, with the CSRF token its forms must carry.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EditorSession {
    #[sqlx(flatten)]
    pub editor: Editor,
    pub csrf_token: String,
}

impl Store {
    /// Adds an editor, or sets a new password for an existing one. A new
    /// password ends the editor's sessions: whoever knew the old one is
    /// logged out too.
    pub async fn upsert_admin(&self, email: &str, password_hash: &str) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "insert into admins (email, password_hash, created_at) values ($1, $2, $3) \
             on conflict (email) do update set password_hash = excluded.password_hash",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar("select id from admins where email = $1")
            .bind(email)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("delete from admin_sessions where admin_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The editor and their password hash, for a login.
    pub async fn admin_credentials(
        &self,
        email: &str,
    ) -> Result<Option<(Editor, String)>, StoreError> {
        let row: Option<(i64, String, String)> =
            sqlx::query_as("select id, email, password_hash from admins where email = $1")
                .bind(email)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|(id, email, hash)| (Editor { id, email }, hash)))
    }

    /// Stores a token's hash; `expires_at` (Unix ms) ends it, if given.
    pub async fn add_api_token(
        &self,
        admin_id: i64,
        token_hash: &str,
        expires_at: Option<i64>,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "insert into api_tokens (admin_id, token_hash, created_at, expires_at) \
             values ($1, $2, $3, $4) returning id",
        )
        .bind(admin_id)
        .bind(token_hash)
        .bind(now_ms())
        .bind(expires_at)
        .fetch_one(&self.write)
        .await?)
    }

    /// The editor a live (unexpired, unrevoked) token acts for. Its use is
    /// recorded, at most once a minute so that busy scripts do not turn
    /// every request into a write.
    pub async fn editor_by_token(&self, token_hash: &str) -> Result<Option<Editor>, StoreError> {
        let now = now_ms();
        let row: Option<(i64, Option<i64>, i64, String)> = sqlx::query_as(
            "select t.id, t.last_used_at, a.id, a.email from api_tokens t \
             join admins a on a.id = t.admin_id \
             where t.token_hash = $1 and (t.expires_at is null or t.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await?;
        let Some((token_id, last_used, id, email)) = row else {
            return Ok(None);
        };
        if last_used.is_none_or(|at| at < now - TOKEN_USE_RESOLUTION_MS) {
            sqlx::query("update api_tokens set last_used_at = $2 where id = $1")
                .bind(token_id)
                .bind(now)
                .execute(&self.write)
                .await?;
        }
        Ok(Some(Editor { id, email }))
    }

    /// Every API token, oldest first, without its secret.
    pub async fn api_tokens(&self) -> Result<Vec<ApiTokenInfo>, StoreError> {
        Ok(sqlx::query_as(
            "select t.id, a.email as editor, t.created_at, t.last_used_at, t.expires_at \
             from api_tokens t join admins a on a.id = t.admin_id order by t.id",
        )
        .fetch_all(&self.read)
        .await?)
    }

    /// Deletes a token; false when there is no such token.
    pub async fn revoke_api_token(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("delete from api_tokens where id = $1")
            .bind(id)
            .execute(&self.write)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn create_session(
        &self,
        admin_id: i64,
        id_hash: &str,
        csrf_token: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "insert into admin_sessions (id_hash, admin_id, csrf_token, created_at, expires_at) \
             values ($1, $2, $3, $4, $5)",
        )
        .bind(id_hash)
        .bind(admin_id)
        .bind(csrf_token)
        .bind(now_ms())
        .bind(expires_at)
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn session(&self, id_hash: &str) -> Result<Option<EditorSession>, StoreError> {
        Ok(sqlx::query_as(
            "select a.id, a.email, s.csrf_token from admin_sessions s join admins a on a.id = s.admin_id \
             where s.id_hash = $1 and s.expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_ms())
        .fetch_optional(&self.read)
        .await?)
    }

    pub async fn delete_session(&self, id_hash: &str) -> Result<(), StoreError> {
        sqlx::query("delete from admin_sessions where id_hash = $1 or expires_at < $2")
            .bind(id_hash)
            .bind(now_ms())
            .execute(&self.write)
            .await?;
        Ok(())
    }
}
