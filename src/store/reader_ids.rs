//! Readers' public ids: the row id, enciphered.
//!
//! Links, webhooks and the API name a reader by a public id rather than the
//! row id, which counts sign-ups. Until migration 0026 that id was random
//! and kept with the row under a unique index. A random key puts each new
//! reader's index entry on a page of its own, so a batch of sign-ups wrote a
//! page of that index per reader: its largest random write.
//!
//! A new reader's public id is now its row id enciphered under a key kept
//! in the database: nothing is stored or indexed for it, and a link's id is
//! deciphered back to its row. The cipher is a Feistel network over the 122
//! bits a version 4 UUID leaves free (AES-128 as its round function), so
//! the id is still a well-formed random-looking UUID to whatever checks
//! one. The row id fills one half and zeros the other: an id that does not
//! decipher to those zeros was not made here (a forger has one chance in
//! 2^61). Two readers in a row get unrelated ids, as before. Readers from
//! before keep the random id stored with them, still found by its index; a
//! reader has exactly one id either way.
//!
//! A row id must never be handed out twice, or a new reader would inherit
//! an erased reader's id and the links and records that carry it. Both
//! backends promise that (SQLite's `autoincrement`, PostgreSQL's sequence);
//! a rebuild of the table must carry its sequence over.
//!
//! The key is made on first use and shared through the database by every
//! process, like the signing key, but apart from it: rotating the signing
//! key must not rename every reader known to another system by its id.

use std::sync::Arc;

use aws_lc_rs::cipher::{EncryptingKey, EncryptionContext, UnboundCipherKey, AES_128};
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sqlx::AnyPool;
use tokio::sync::OnceCell;

use super::StoreError;
use crate::domain::feistel;

/// The name of the key in `app_secrets`.
const KEY_NAME: &str = "reader_ids";

/// Bits in each half of the Feistel network: 122 in all.
const HALF_BITS: u32 = 61;
const HALF_MASK: u64 = (1 << HALF_BITS) - 1;

/// Rounds of the Feistel network: 4 already make a pseudorandom
/// permutation; the rest are margin at little cost.
const ROUNDS: u8 = 8;

/// Enciphers row ids into public ids and back.
pub struct ReaderIds {
    aes: EncryptingKey,
}

impl ReaderIds {
    /// Ids under `key`.
    pub fn new(key: &[u8; 16]) -> ReaderIds {
        let unbound = UnboundCipherKey::new(&AES_128, key).expect("an AES-128 key is 16 bytes");
        ReaderIds {
            aes: EncryptingKey::ecb(unbound).expect("AES supports ECB"),
        }
    }

    /// The public id of the reader in row `row`.
    ///
    /// # Panics
    /// On a row id of 2^61 or more, which no database here hands out.
    pub fn public_id(&self, row: i64) -> uuid::Uuid {
        let row = u64::try_from(row).expect("row ids are positive");
        assert!(row <= HALF_MASK, "a row id fits in {HALF_BITS} bits");
        let (left, right) = feistel::encipher(ROUNDS, (row, 0), |r, half| self.round(r, half));
        uuid::Uuid::from_u128(spread((u128::from(left) << HALF_BITS) | u128::from(right)))
    }

    /// The row a public id made here names, or `None` for any other id (a
    /// stored one of before, a forged or mistyped one).
    pub fn row_of(&self, id: &uuid::Uuid) -> Option<i64> {
        let packed = gather(id.as_u128())?;
        let halves = ((packed >> HALF_BITS) as u64, (packed as u64) & HALF_MASK);
        let (left, right) = feistel::decipher(ROUNDS, halves, |r, half| self.round(r, half));
        if right != 0 || left == 0 {
            return None;
        }
        i64::try_from(left).ok()
    }

    /// The public id of a reader's row: the id stored with it (readers
    /// from before migration 0026), or its row id enciphered.
    pub fn of_row(&self, row: i64, stored: Option<&str>) -> Result<uuid::Uuid, StoreError> {
        match stored {
            Some(text) => uuid::Uuid::try_parse(text)
                .map_err(|_| StoreError::Corrupt(format!("public id {text:?}"))),
            None if (1..=HALF_MASK as i64).contains(&row) => Ok(self.public_id(row)),
            None => Err(StoreError::Corrupt(format!("reader row id {row}"))),
        }
    }

    /// The round function: AES of the round's number and one half, cut to
    /// a half's width.
    fn round(&self, round: u8, half: u64) -> u64 {
        let mut block = [0u8; 16];
        block[0] = round;
        block[8..].copy_from_slice(&half.to_be_bytes());
        self.aes
            .less_safe_encrypt(&mut block, EncryptionContext::None)
            .expect("one whole block enciphers");
        u64::from_be_bytes(block[..8].try_into().expect("8 bytes")) & HALF_MASK
    }
}

/// 122 bits laid out as a version 4 UUID around its version and variant.
fn spread(bits: u128) -> u128 {
    let high = bits >> 74; // 48 bits: time_low and time_mid
    let middle = (bits >> 62) & 0xfff; // 12 bits after the version
    let low = bits & ((1 << 62) - 1); // 62 bits after the variant
    (high << 80) | (0x4 << 76) | (middle << 64) | (0b10 << 62) | low
}

/// The 122 bits of a version 4 UUID, or `None` for another kind.
fn gather(uuid: u128) -> Option<u128> {
    if (uuid >> 76) & 0xf != 0x4 || (uuid >> 62) & 0b11 != 0b10 {
        return None;
    }
    Some(((uuid >> 80) << 74) | (((uuid >> 64) & 0xfff) << 62) | (uuid & ((1 << 62) - 1)))
}

/// The key, loaded (or made) once per process on first use.
#[derive(Clone, Default)]
pub(super) struct ReaderIdsCell(Arc<OnceCell<ReaderIds>>);

impl std::fmt::Debug for ReaderIdsCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key stays out of every log.
        f.write_str("ReaderIdsCell")
    }
}

impl ReaderIdsCell {
    pub async fn get(&self, pool: &AnyPool) -> Result<&ReaderIds, StoreError> {
        self.0.get_or_try_init(|| load(pool)).await
    }
}

/// Reads the key, storing a new random one first when there is none;
/// concurrent first uses agree on whichever insert won. Only the first use
/// on a database writes: a process that merely reads readers never waits
/// for the write lock another process holds (an import, say).
async fn load(pool: &AnyPool) -> Result<ReaderIds, StoreError> {
    let read = || {
        sqlx::query_scalar::<_, String>("select value from app_secrets where name = $1")
            .bind(KEY_NAME)
            .fetch_optional(pool)
    };
    let stored = match read().await? {
        Some(stored) => stored,
        None => {
            let mut candidate = [0u8; 16];
            aws_lc_rs::rand::fill(&mut candidate)
                .map_err(|_| StoreError::Corrupt("no randomness for the reader id key".into()))?;
            sqlx::query(
                "insert into app_secrets (name, value) values ($1, $2) on conflict (name) do nothing",
            )
            .bind(KEY_NAME)
            .bind(BASE64.encode(candidate))
            .execute(pool)
            .await?;
            read()
                .await?
                .ok_or_else(|| StoreError::Corrupt("the reader id key vanished".into()))?
        }
    };
    let key: [u8; 16] = BASE64
        .decode(&stored)
        .ok()
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| StoreError::Corrupt("the reader id key is not 16 bytes in base64".into()))?;
    Ok(ReaderIds::new(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_back_to_their_rows() {
        let ids = ReaderIds::new(&[7; 16]);
        for row in [1, 2, 3, 1_000_000, HALF_MASK as i64] {
            let id = ids.public_id(row);
            assert_eq!(id.get_version_num(), 4, "{id}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(ids.row_of(&id), Some(row));
        }
    }

    #[test]
    fn the_layout_keeps_every_free_bit() {
        for bits in [
            0u128,
            1,
            (1 << 122) - 1,
            0x02aa_aaaa_aaaa_aaaa_aaaa_aaaa_aaaa_aaaa,
        ] {
            assert_eq!(gather(spread(bits)), Some(bits));
        }
    }

    #[test]
    fn readers_in_a_row_get_unrelated_ids() {
        let ids = ReaderIds::new(&[7; 16]);
        let (a, b) = (ids.public_id(41).as_u128(), ids.public_id(42).as_u128());
        // About half the 122 free bits differ: nothing of the order shows.
        let differing = (a ^ b).count_ones();
        assert!((30..=92).contains(&differing), "{differing} bits differ");
    }

    #[test]
    fn ids_not_made_here_name_no_row() {
        let ids = ReaderIds::new(&[7; 16]);
        let other = ReaderIds::new(&[8; 16]);
        assert_eq!(ids.row_of(&other.public_id(5)), None);
        assert_eq!(ids.row_of(&uuid::Uuid::new_v4()), None);
        assert_eq!(ids.row_of(&uuid::Uuid::nil()), None);
        let mut flipped = *ids.public_id(5).as_bytes();
        flipped[15] ^= 1;
        assert_eq!(ids.row_of(&uuid::Uuid::from_bytes(flipped)), None);
    }

    /// Adds a reader as the service does now, with no stored id; returns
    /// their row id.
    async fn add_reader(store: &crate::store::Store, email: &str) -> i64 {
        sqlx::query_scalar(
            "insert into subscribers (email, status, created_at) \
             values ($1, 'confirmed', 0) returning id",
        )
        .bind(email)
        .fetch_one(store.pool())
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn a_reader_is_found_by_their_one_id_in_every_process() {
        use crate::domain::LinkedId;
        use crate::store::test_stores::stores;
        for store in stores("reader_ids").await {
            // A reader from before migration 0026, with a stored id, and one
            // signed up since.
            let stored = uuid::Uuid::new_v4();
            sqlx::query(
                "insert into subscribers (public_id, email, status, created_at) \
                 values ($1, 'old@x.org', 'confirmed', 0)",
            )
            .bind(stored.to_string())
            .execute(store.pool())
            .await
            .unwrap();
            let old: i64 = sqlx::query_scalar("select id from subscribers")
                .fetch_one(store.pool())
                .await
                .unwrap();
            let new = add_reader(&store, "new@x.org").await;
            let kept: Option<String> =
                sqlx::query_scalar("select public_id from subscribers where id = $1")
                    .bind(new)
                    .fetch_one(store.pool())
                    .await
                    .unwrap();
            assert_eq!(kept, None, "nothing is stored for a new reader");

            let ids = store.reader_ids().await.unwrap();
            let public = store.reader_public_id(new).await.unwrap().unwrap();
            assert_eq!(public, ids.public_id(new));
            assert_eq!(store.reader_public_id(old).await.unwrap(), Some(stored));
            let found = |id: uuid::Uuid| {
                let store = &store;
                async move { store.subscriber_id_of(&LinkedId::Public(id)).await }
            };
            assert_eq!(found(public).await.unwrap(), Some(new));
            assert_eq!(found(stored).await.unwrap(), Some(old));
            // The old reader has one id: their row enciphered names nobody.
            assert_eq!(found(ids.public_id(old)).await.unwrap(), None);
            assert_eq!(found(ids.public_id(new + 1)).await.unwrap(), None);

            // Another process on the database reads the same key.
            let elsewhere = ReaderIdsCell::default();
            let elsewhere = elsewhere.get(&store.write).await.unwrap();
            assert_eq!(elsewhere.public_id(new), public);

            // The newest reader erased, the next one is not named as they
            // were: their old links name nobody.
            sqlx::query("delete from subscribers where id = $1")
                .bind(new)
                .execute(store.pool())
                .await
                .unwrap();
            let next = add_reader(&store, "next@x.org").await;
            assert_ne!(store.reader_public_id(next).await.unwrap(), Some(public));
            assert_eq!(found(public).await.unwrap(), None);
        }
    }

    #[test]
    fn a_stored_id_wins_over_the_enciphered_one() {
        let ids = ReaderIds::new(&[7; 16]);
        let stored = uuid::Uuid::new_v4();
        assert_eq!(ids.of_row(3, Some(&stored.to_string())).unwrap(), stored);
        assert_eq!(ids.of_row(3, None).unwrap(), ids.public_id(3));
        assert!(ids.of_row(3, Some("not an id")).is_err());
    }
}
