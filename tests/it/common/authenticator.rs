//! A software authenticator for the tests: what a browser and a security key send back to a
//! WebAuthn ceremony, made here (ES256, attestation `none`, user verified), with ways to make it
//! lie — another origin, a bad signature, a counter that goes backwards — that the server must
//! refuse. Its answers are WebAuthn Level 3 JSON, as `credential.toJSON()` gives them.

use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::RngCore;
use serde_cbor_2::Value as Cbor;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The origin of the test apps (their default `public_url`), and its RP ID.
pub const ORIGIN: &str = "http://localhost:8000";
pub const RP_ID: &str = "localhost";

/// Authenticator data flags.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const BE: u8 = 0x08;
const BS: u8 = 0x10;
const AT: u8 = 0x40;

/// One passkey held by the authenticator: its key, id, the account's user handle and counter.
pub struct SoftPasskey {
    key: SigningKey,
    pub id: Vec<u8>,
    pub user_handle: Vec<u8>,
    pub counter: u32,
    /// Backed up (synced), as a phone's password manager reports its passkeys.
    pub synced: bool,
}

impl SoftPasskey {
    /// A new credential answering a registration ceremony's options (`publicKey`): the
    /// `RegistrationResponseJSON` to send, and the passkey now held.
    pub fn register(options: &Value) -> (Value, SoftPasskey) {
        SoftPasskey::register_with(options, ORIGIN, false)
    }

    /// As [`SoftPasskey::register`], for a passkey backed up (synced) by its authenticator.
    pub fn register_synced(options: &Value) -> (Value, SoftPasskey) {
        SoftPasskey::register_with(options, ORIGIN, true)
    }

    /// As [`SoftPasskey::register`], from a page at `origin`.
    pub fn register_at(options: &Value, origin: &str) -> (Value, SoftPasskey) {
        SoftPasskey::register_with(options, origin, false)
    }

    fn register_with(options: &Value, origin: &str, synced: bool) -> (Value, SoftPasskey) {
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let key = SigningKey::from_slice(&secret).expect("a P-256 key");
        let mut id = vec![0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut id);
        let user_handle = decode(options["user"]["id"].as_str().expect("user.id"));
        let passkey = SoftPasskey { key, id, user_handle, counter: 0, synced };
        (passkey.attest(options, origin), passkey)
    }

    /// This credential's answer to a registration ceremony (again: an authenticator that
    /// ignores the ceremony's list of credentials to exclude).
    pub fn attest(&self, options: &Value, origin: &str) -> Value {
        let rp_id = options["rp"]["id"].as_str().unwrap_or(RP_ID).to_owned();
        let client_data = client_data("webauthn.create", options, origin);
        let point = self.key.verifying_key().to_sec1_point(false);
        let point = point.as_bytes();
        let cose_key = Cbor::Map(BTreeMap::from([
            (Cbor::Integer(1), Cbor::Integer(2)),  // kty: EC2
            (Cbor::Integer(3), Cbor::Integer(-7)), // alg: ES256
            (Cbor::Integer(-1), Cbor::Integer(1)), // crv: P-256
            (Cbor::Integer(-2), Cbor::Bytes(point[1..33].to_vec())),
            (Cbor::Integer(-3), Cbor::Bytes(point[33..65].to_vec())),
        ]));
        let mut auth_data = self.auth_data(&rp_id, AT);
        auth_data.extend([0u8; 16]); // AAGUID
        auth_data.extend((self.id.len() as u16).to_be_bytes());
        auth_data.extend(&self.id);
        auth_data.extend(serde_cbor_2::to_vec(&cose_key).expect("CBOR"));
        let attestation = Cbor::Map(BTreeMap::from([
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(BTreeMap::new())),
            (Cbor::Text("authData".into()), Cbor::Bytes(auth_data)),
        ]));
        self.answer(json!({
            "clientDataJSON": encode(client_data.as_bytes()),
            "attestationObject": encode(&serde_cbor_2::to_vec(&attestation).expect("CBOR")),
            "transports": ["internal"],
        }))
    }

    /// Signs a sign-in ceremony's options (`publicKey`) from this server's origin: the
    /// `AuthenticationResponseJSON` to send. The counter moves forward first.
    pub fn sign(&mut self, options: &Value) -> Value {
        self.counter += 1;
        self.assert(options, ORIGIN, self.counter)
    }

    /// An assertion as given, from `origin`, with `counter`.
    pub fn assert(&self, options: &Value, origin: &str, counter: u32) -> Value {
        let rp_id = options["rpId"].as_str().unwrap_or(RP_ID).to_owned();
        let client_data = client_data("webauthn.get", options, origin);
        let mut auth_data = self.auth_data(&rp_id, 0);
        auth_data[33..37].copy_from_slice(&counter.to_be_bytes());
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(client_data.as_bytes()));
        let signature: Signature = self.key.sign(&signed);
        self.answer(json!({
            "clientDataJSON": encode(client_data.as_bytes()),
            "authenticatorData": encode(&auth_data),
            "signature": encode(signature.to_der().as_bytes()),
            "userHandle": encode(&self.user_handle),
        }))
    }

    /// A credential's JSON around an authenticator's `response`.
    fn answer(&self, response: Value) -> Value {
        json!({
            "id": encode(&self.id),
            "rawId": encode(&self.id),
            "type": "public-key",
            "response": response,
            "authenticatorAttachment": "platform",
            "clientExtensionResults": {},
        })
    }

    /// The RP ID hash, the flags (user present and verified, plus `extra`) and the counter.
    fn auth_data(&self, rp_id: &str, extra: u8) -> Vec<u8> {
        let mut data = Sha256::digest(rp_id.as_bytes()).to_vec();
        let backup = if self.synced { BE | BS } else { 0 };
        data.push(UP | UV | backup | extra);
        data.extend(self.counter.to_be_bytes());
        data
    }
}

/// Spoils a signature of an answer (one bit of its last byte).
pub fn tamper(answer: &mut Value) {
    let signature = answer["response"]["signature"].as_str().expect("a signature");
    let mut bytes = decode(signature);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    answer["response"]["signature"] = encode(&bytes).into();
}

fn client_data(kind: &str, options: &Value, origin: &str) -> String {
    let challenge = options["challenge"].as_str().expect("a challenge");
    json!({ "type": kind, "challenge": challenge, "origin": origin, "crossOrigin": false }).to_string()
}

pub fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn decode(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).expect("base64url")
}
