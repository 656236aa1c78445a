//! Editors, their API tokens and their web sessions. Only hashes of
//! passwords, tokens and session ids are stored.

use sqlx::Row;

use super::{now_ms, Store, StoreError};

/// An authenticated editor.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Editor {
    pub id: i64,
    pub email: String,
}

/// A web session, with the CSRF token its forms must carry.
#[derive(Debug, Clone)]
pub struct EditorSession {
    pub editor: Editor,
    pub csrf_token: String,
}

impl Store {
    /// Adds an editor, or sets a new password for an existing one.
    pub async fn upsert_admin(&self, email: &str, password_hash: &str) -> Result<i64, StoreError> {
        sqlx::query(
            "insert into admins (email, password_hash, created_at) values ($1, $2, $3) \
             on conflict (email) do update set password_hash = excluded.password_hash",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(sqlx::query_scalar("select id from admins where email = $1")
            .bind(email)
            .fetch_one(&self.write)
            .await?)
    }

    /// The editor and their password hash, for a login.
    pub async fn admin_credentials(
        &self,
        email: &str,
    ) -> Result<Option<(Editor, String)>, StoreError> {
        let row = sqlx::query("select id, email, password_hash from admins where email = $1")
            .bind(email)
            .fetch_optional(&self.read)
            .await?;
        row.map(|row| {
            Ok((
                Editor {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                },
                row.try_get("password_hash")?,
            ))
        })
        .transpose()
    }

    pub async fn add_api_token(&self, admin_id: i64, token_hash: &str) -> Result<(), StoreError> {
        sqlx::query(
            "insert into api_tokens (admin_id, token_hash, created_at) values ($1, $2, $3)",
        )
        .bind(admin_id)
        .bind(token_hash)
        .bind(now_ms())
        .execute(&self.write)
        .await?;
        Ok(())
    }

    pub async fn editor_by_token(&self, token_hash: &str) -> Result<Option<Editor>, StoreError> {
        let row = sqlx::query(
            "select a.id, a.email from api_tokens t join admins a on a.id = t.admin_id where t.token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(Editor {
                id: row.try_get("id")?,
                email: row.try_get("email")?,
            })
        })
        .transpose()
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
        let row = sqlx::query(
            "select a.id, a.email, s.csrf_token from admin_sessions s join admins a on a.id = s.admin_id \
             where s.id_hash = $1 and s.expires_at > $2",
        )
        .bind(id_hash)
        .bind(now_ms())
        .fetch_optional(&self.read)
        .await?;
        row.map(|row| {
            Ok(EditorSession {
                editor: Editor {
                    id: row.try_get("id")?,
                    email: row.try_get("email")?,
                },
                csrf_token: row.try_get("csrf_token")?,
            })
        })
        .transpose()
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
