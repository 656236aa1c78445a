//! The signing key, generated on first run and shared through the database
//! by every process that uses it.

use super::{Store, StoreError};

impl Store {
    /// Returns the stored value of `name`, storing `candidate` first when
    /// there is none. Concurrent first runs agree on whichever insert won.
    pub async fn secret_or_insert(
        &self,
        name: &str,
        candidate: &str,
    ) -> Result<String, StoreError> {
        sqlx::query(
            "insert into app_secrets (name, value) values ($1, $2) on conflict (name) do nothing",
        )
        .bind(name)
        .bind(candidate)
        .execute(&self.write)
        .await?;
        let value: String = sqlx::query_scalar("select value from app_secrets where name = $1")
            .bind(name)
            .fetch_one(&self.write)
            .await?;
        Ok(value)
    }
}
