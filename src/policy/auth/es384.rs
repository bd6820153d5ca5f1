//! `ES384` (ECDSA on P-384 with SHA-384) for `jwt-compact`, which has no P-384 support.

use std::borrow::Cow;

use jwt_compact::alg::RsaSignature;
use jwt_compact::{Algorithm, AlgorithmSignature};
use p384::ecdsa::signature::{Signer, Verifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};

/// Length of a JWS `ES384` signature: `r || s`, 48 bytes each (RFC 7518 section 3.4).
pub const ES384_SIGNATURE_LEN: usize = 96;

/// The `ES384` JWS algorithm over the `p384` crate.
///
/// The signature type is `jwt-compact`'s variable-length byte container ([`RsaSignature`]):
/// implementing [`AlgorithmSignature`] for a new type would require naming `anyhow::Error`,
/// and `anyhow` is not a direct dependency of this crate. The length and the encoding
/// (`r || s`, 96 bytes) are checked in [`Algorithm::verify_signature`] instead, which
/// returns `false` for anything malformed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Es384;

impl Algorithm for Es384 {
    type SigningKey = SigningKey;
    type VerifyingKey = VerifyingKey;
    type Signature = RsaSignature;

    fn name(&self) -> Cow<'static, str> {
        Cow::Borrowed("ES384")
    }

    fn sign(&self, signing_key: &SigningKey, message: &[u8]) -> RsaSignature {
        let signature: Signature = signing_key.sign(message);
        // Wrapping bytes into the container cannot fail.
        RsaSignature::try_from_slice(&signature.to_bytes()).expect("byte container")
    }

    fn verify_signature(
        &self,
        signature: &RsaSignature,
        verifying_key: &VerifyingKey,
        message: &[u8],
    ) -> bool {
        let bytes = signature.as_bytes();
        if bytes.len() != ES384_SIGNATURE_LEN {
            return false;
        }
        match Signature::from_slice(&bytes) {
            // `Verifier` hashes the message with SHA-384, the curve's digest.
            Ok(signature) => verifying_key.verify(message, &signature).is_ok(),
            Err(_) => false,
        }
    }
}
