//! `newsletter admin …`: editor accounts and API tokens.

use std::io::{BufRead, IsTerminal};

use anyhow::{bail, Context};

use crate::domain::{hash_password, random_token, sha256_hex, SubscriberEmail};
use crate::store::Store;

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

/// Adds an editor (or sets a new password for an existing one).
pub async fn add_editor(store: &Store, email: &str, password: String) -> anyhow::Result<i64> {
    let email = SubscriberEmail::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .context("hashing the password")??;
    Ok(store.upsert_admin(email.as_str(), &hash).await?)
}

/// Creates an API token for an editor and returns it; only its hash is kept.
pub async fn create_token(store: &Store, email: &str) -> anyhow::Result<String> {
    let email = SubscriberEmail::parse(email).map_err(|e| anyhow::anyhow!("{e}"))?;
    let Some((editor, _)) = store.admin_credentials(email.as_str()).await? else {
        bail!("no editor {email}; add one with `newsletter admin add {email}`");
    };
    let token = format!("nl_{}", random_token());
    store.add_api_token(editor.id, &sha256_hex(&token)).await?;
    Ok(token)
}
