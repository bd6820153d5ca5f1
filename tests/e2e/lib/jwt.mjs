// JSON Web Tokens for the end-to-end tests, made with node:crypto only: an
// implementation independent of the gateway's (no npm packages).
//
//   const rsa = rsaKey('rs-1');                  // {kid, privateKey, publicKey, jwk}
//   const token = signJwt({ alg: 'RS256', key: rsa, payload: { sub: 'u1', exp: nowS() + 300 } });
//   const hs = signJwt({ alg: 'HS256', secret: 'x'.repeat(32), payload });
//
// `jwk` is the public key as a JWK with `kid` (and `alg` when given), ready for a
// provider's inline `keys` or a JWKS document. signJwt's `header` merges over
// {alg, typ: 'JWT', kid} (a `kid: undefined` there removes it).
import crypto from 'node:crypto';

export const b64url = (data) => Buffer.from(data).toString('base64url');
export const nowS = () => Math.floor(Date.now() / 1000);

function withJwk(kid, alg, { privateKey, publicKey }) {
  const jwk = { ...publicKey.export({ format: 'jwk' }), kid };
  if (alg) jwk.alg = alg;
  return { kid, alg, privateKey, publicKey, jwk };
}

/** An RSA key pair (2048 bits by default). */
export function rsaKey(kid, { alg, bits = 2048 } = {}) {
  return withJwk(kid, alg, crypto.generateKeyPairSync('rsa', { modulusLength: bits }));
}

/** An EC key pair on P-256 or P-384. */
export function ecKey(kid, curve, { alg } = {}) {
  const namedCurve = { 'P-256': 'prime256v1', 'P-384': 'secp384r1' }[curve];
  return withJwk(kid, alg, crypto.generateKeyPairSync('ec', { namedCurve }));
}

/** An Ed25519 key pair. */
export function ed25519Key(kid, { alg } = {}) {
  return withJwk(kid, alg, crypto.generateKeyPairSync('ed25519'));
}

const HASH = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

/** The signature of `input` (a string) for `alg`, with `key` (a key pair from above) or `secret`. */
export function signature(alg, input, { key, secret } = {}) {
  const data = Buffer.from(input, 'utf8');
  const bits = alg.slice(2);
  switch (alg.slice(0, 2)) {
    case 'HS':
      return crypto.createHmac(HASH[bits], secret).update(data).digest();
    case 'RS':
      return crypto.sign(HASH[bits], data, { key: key.privateKey, padding: crypto.constants.RSA_PKCS1_PADDING });
    case 'PS':
      return crypto.sign(HASH[bits], data, {
        key: key.privateKey,
        padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
        saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST,
      });
    case 'ES':
      return crypto.sign(HASH[bits], data, { key: key.privateKey, dsaEncoding: 'ieee-p1363' });
    case 'Ed':
      if (alg !== 'EdDSA') break;
      return crypto.sign(null, data, key.privateKey);
    default:
      break;
  }
  throw new Error(`signJwt: no signer for ${alg}`);
}

/**
 * A compact JWS. `alg` is the header's (and the signer's, unless `signAs` names
 * another); `kid` defaults to the key's. `signature: Buffer` replaces the real one.
 */
export function signJwt({ alg, key, secret, payload, header = {}, signAs, signature: sig }) {
  const head = { alg, typ: 'JWT', ...(key?.kid ? { kid: key.kid } : {}), ...header };
  for (const [k, v] of Object.entries(head)) if (v === undefined) delete head[k];
  const input = `${b64url(JSON.stringify(head))}.${b64url(typeof payload === 'string' ? payload : JSON.stringify(payload))}`;
  const s = sig ?? signature(signAs ?? alg, input, { key, secret });
  return `${input}.${b64url(s)}`;
}

/** The three segments of a compact token. */
export const segments = (token) => token.split('.');
