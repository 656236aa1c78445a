//! `newsletter admin …`: editor accounts and API tokens.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context};

use crate::domain::{check_strength, hash_password, random_token, sha256_hex, SubscriberEmail};
use crate::store::{now_ms, Store};

/// Reads a password without echo from a terminal, or as one line from
/// standard input (for scripts), so it never appears in the process list or
/// the shell history.
pub fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat password: ")?;
        if first != second {
            bail!("the passwords do not match");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_string())
    }
}

/// Adds an editor (or sets a new password for an existing one, which ends
/// their sessions). A password that is easy to guess is refused with the
/// reason.
pub async fn add_editor(store: &Store, email: &str, password: String) -> anyhow::Result<i64> {
    let email = SubscriberEmail::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?;
    let local_part = email.as_str().split('@').next().unwrap_or_default();
    check_strength(&password, &[email.as_str(), local_part])?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .context("hashing the password")??;
    Ok(store.upsert_admin(email.as_str(), &hash).await?)
}

/// Creates an API token for an editor and returns it; only its hash is kept.
pub async fn create_token(store: &Store, email: &str) -> anyhow::Result<String> {
    create_token_expiring(store, email, None).await
}

/// As [`create_token`], ending after `days` days when given.
pub async fn create_token_expiring(
    store: &Store,
    email: &str,
    days: Option<u32>,
) -> anyhow::Result<String> {
    let email = SubscriberEmail::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some((editor, _)) = store.admin_credentials(email.as_str()).await? else {
        bail!("no editor {email}; add one with `newsletter admin add {email}`");
    };
    let token = format!("nl_{}", random_token());
    let expires_at = days.map(|d| now_ms() + i64::from(d) * 24 * 3600 * 1000);
    store
        .add_api_token(editor.id, &sha256_hex(&token), expires_at)
        .await?;
    Ok(token)
}

/// The API tokens as a table: id, editor, when created, last used and
/// when it expires.
pub async fn list_tokens(store: &Store) -> anyhow::Result<String> {
    let now = now_ms();
    let mut out = format!(
        "{:<6} {:<32} {:<20} {:<20} {}\n",
        "id", "editor", "created", "last used", "expires"
    );
    for token in store.api_tokens().await? {
        let expires = match token.expires_at {
            None => "never".to_string(),
            Some(at) if at <= now => format!("{} (expired)", moment(at)),
            Some(at) => moment(at),
        };
        out.push_str(&format!(
            "{:<6} {:<32} {:<20} {:<20} {}\n",
            token.id,
            token.editor,
            moment(token.created_at),
            token.last_used_at.map_or("never".to_string(), moment),
            expires
        ));
    }
    Ok(out)
}

/// Revokes the token with `id`: scripts using it are refused from now on.
pub async fn revoke_token(store: &Store, id: i64) -> anyhow::Result<()> {
    if !store.revoke_api_token(id).await? {
        bail!("no API token {id}; `newsletter admin tokens list` shows them");
    }
    Ok(())
}

/// A time for a table, in UTC to the minute.
fn moment(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(
        || ms.to_string(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}
