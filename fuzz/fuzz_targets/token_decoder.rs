//! Whatever arrives as a token in a link is refused or accepted without a
//! panic, and only tokens this key signed are accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use newsletter::domain::{ConfirmationToken, LinkedId, Signer};

/// The text a token signs for `id`, in the format that named it.
fn text_of(id: LinkedId) -> String {
    match id {
        LinkedId::Public(id) => id.to_string(),
        LinkedId::Row(id) => id.to_string(),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let signer = Signer::new(b"a fixed key for fuzzing only, 32+ bytes long");
    if let Ok(id) = signer.verify_unsubscribe(token) {
        assert_eq!(signer.sign("unsubscribe", &text_of(id)), token);
    }
    if let Ok((report, reader)) = signer.verify_feedback(token) {
        let text = format!("{}.{}", text_of(report), text_of(reader));
        assert_eq!(signer.sign("feedback", &text), token);
    }
    let _ = signer.verify_id("fuzz", token);
    if let Ok(parsed) = ConfirmationToken::parse(token) {
        // A bare hash for a token of before; `t`, the time and the hash
        // for one that carries its time.
        let key = parsed.key();
        assert!(key.len() == 64 || (key.len() == 77 && key.starts_with('t')), "{key}");
    }
});
