//! Signatures this isolate has already verified.
//!
//! Clients send the same token on many requests, and checking an RS256 or ES256
//! signature in wasm costs about a millisecond of CPU (an HMAC signature costs less
//! than a lookup here and is always checked). Once a token's signature has
//! been verified for a provider, with the provider's keys as they were, the same
//! bytes need not be verified again: only the claims (expiry, not-before, issuer,
//! audience, scopes), which are checked on every request.
//!
//! An entry is the SHA-256 of the provider's index, the signed part of the token and
//! its signature, with the generation of the provider's fetched key set at the time.
//! When the key set changes (a JWKS refresh), the generation moves on and older
//! entries no longer count, so a key that was removed stops vouching for its
//! tokens. Only successful verifications are remembered. The set is bounded: when it
//! is full it is emptied and fills again with the tokens in use.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use super::Token;

/// How many verified signatures an isolate remembers (about 60 bytes each).
pub const MAX_SEEN: usize = 4096;

/// The digest that names a token's signature for one provider.
pub type SignatureId = [u8; 32];

/// Verified signatures: digest -> generation of the key set that verified it.
#[derive(Debug, Default)]
pub struct SeenSignatures {
    entries: HashMap<SignatureId, u64>,
}

impl SeenSignatures {
    pub fn new() -> SeenSignatures {
        SeenSignatures::default()
    }

    /// The digest of `token` for the provider at `provider` (its index).
    pub fn id(provider: usize, token: &Token<'_>) -> SignatureId {
        let mut hash = Sha256::new();
        hash.update((provider as u64).to_le_bytes());
        hash.update((token.signing_input.len() as u64).to_le_bytes());
        hash.update(token.signing_input.as_bytes());
        hash.update(&token.signature);
        hash.finalize().into()
    }

    /// Whether this signature was verified with the key set of this generation.
    pub fn contains(&self, id: &SignatureId, generation: u64) -> bool {
        self.entries.get(id) == Some(&generation)
    }

    /// Remembers a verified signature; empties the set first when it is full.
    pub fn insert(&mut self, id: SignatureId, generation: u64) {
        if self.entries.len() >= MAX_SEEN && !self.entries.contains_key(&id) {
            self.entries.clear();
        }
        self.entries.insert(id, generation);
    }

    /// How many signatures are remembered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
