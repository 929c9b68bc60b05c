//! Request bodies: JSON for the API, forms for the pages. Every way a body can be wrong gets its
//! own clear 4xx (415 wrong type, 413 too large, 400 malformed, 422 wrong shape, 403 a page's
//! form without its CSRF token) and never reaches a handler.

use rocket::data::{self, Data, FromData, ToByteUnit};
use rocket::form::{Form, FromForm, Lenient};
use rocket::http::RawStr;
use rocket::request::{Outcome, Request};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::auth::CsrfKey;
use crate::domain::Fields;
use crate::error::{Error, Result};
use crate::web::{state, CsrfToken};

/// A JSON body of type `T`, read within the `json` limit.
pub struct ApiJson<T>(pub T);

/// `{username, password, invite}` for a new account.
#[derive(Deserialize, ToSchema)]
pub struct NewCredentials {
    // Bounds and description: the username rule, written in by `openapi::FieldRules`.
    #[serde(default)]
    #[schema(required = true, format = "username")]
    pub username: String,
    // Bounds and description: the new-password rules and settings, likewise.
    #[serde(default)]
    #[schema(value_type = String, required = true, format = "bcrypt-password")]
    pub password: SecretString,
    /// The token of an invitation (from its link, `/register?invite=<token>`): required when
    /// sign-up is by invitation; the invitation is spent and the account joins its groups.
    /// `null` is no invitation.
    #[serde(default)]
    #[schema(value_type = Option<String>, required = false)]
    pub invite: Option<String>,
}

/// `{username, password}`, as JSON or as the OAuth2 password grant form.
#[derive(Deserialize, ToSchema)]
pub struct Credentials {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub username: String,
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password, min_length = 1)]
    pub password: SecretString,
    /// OAuth2 password grant: `password` when present.
    #[serde(default)]
    #[schema(value_type = GrantType, required = false)]
    pub grant_type: Option<String>,
    /// The `device_token` of an earlier sign-in to this account: the per-username limit on
    /// failed guesses (strangers') then does not apply to this client.
    #[serde(default)]
    #[schema(required = false)]
    pub device_token: Option<String>,
}

/// `{refresh_token}`, as JSON or as the OAuth2 refresh form.
#[derive(Deserialize, ToSchema)]
pub struct RefreshRequest {
    #[serde(default)]
    #[schema(required = true, min_length = 1)]
    pub refresh_token: String,
}

/// The OAuth2 refresh grant (RFC 6749 §6), as OAuth2 client libraries send it to
/// `POST /auth/refresh`: `application/x-www-form-urlencoded`.
#[derive(FromForm, ToSchema)]
pub struct RefreshForm {
    /// `refresh_token` when present.
    #[schema(value_type = Option<RefreshGrantType>, required = false)]
    grant_type: Option<String>,
    #[field(default = String::new())]
    #[schema(required = true, min_length = 1)]
    refresh_token: String,
}

/// The grant of the refresh form, as the OpenAPI document describes it.
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum RefreshGrantType {
    RefreshToken,
}

/// The same fields sent as a form (never `Debug`: it holds a password).
#[derive(FromForm)]
pub struct CredentialsForm {
    #[field(default = String::new())]
    username: String,
    #[field(default = String::new())]
    password: String,
    grant_type: Option<String>,
    device_token: Option<String>,
}

/// The only OAuth2 grant MiniAuth answers. It describes `grant_type` in the OpenAPI document;
/// the field itself stays a string so that another grant gets a 422 that names it.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum GrantType {
    Password,
}

fn is_json(req: &Request<'_>) -> bool {
    req.content_type().is_some_and(|ct| ct.is_json() || ct.sub().as_str().ends_with("+json"))
}

fn is_form(req: &Request<'_>) -> bool {
    req.content_type().is_some_and(|ct| ct.is_form())
}

async fn read_body(req: &Request<'_>, data: Data<'_>, limit: &str) -> Result<String> {
    let limit = req.limits().get(limit).unwrap_or_else(|| 16.kibibytes());
    let body = data
        .open(limit)
        .into_string()
        .await
        .map_err(|_| Error::BadRequest("The request body is not valid UTF-8.".into()))?;
    match body.is_complete() {
        true => Ok(body.into_inner()),
        false => Err(Error::PayloadTooLarge),
    }
}

fn parse_json<T: DeserializeOwned>(body: &str) -> Result<T> {
    use rocket::serde::json::serde_json;
    let shape_error = |e: serde_json::Error| {
        Error::Validation([("body", vec![format!("The JSON does not have the expected shape: {e}.")])].into())
    };
    let value = serde_json::from_str::<StrictJson>(body)
        .map_err(|e| Error::BadRequest(format!("The request body is not valid JSON: {e}.")))?
        .0;
    // serde would also fill a struct from an array of its fields in order: only objects count.
    if !value.is_object() {
        return Err(Error::Validation([("body", vec!["The JSON body must be an object.".into()])].into()));
    }
    serde_json::from_value(value).map_err(shape_error)
}

/// A JSON document read as serde_json reads it, except that an object that repeats a key is
/// malformed: serde_json would keep the last value, so `{"username": "a", "username": "admin"}`
/// could be read one way here and another way by whatever checked it before.
struct StrictJson(rocket::serde::json::Value);

impl<'de> Deserialize<'de> for StrictJson {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictJson)
    }
}

struct StrictVisitor;

impl<'de> serde::de::Visitor<'de> for StrictVisitor {
    type Value = rocket::serde::json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
        Ok(rocket::serde::json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictJson(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut object = rocket::serde::json::serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!("the key {key:?} appears twice")));
            }
            let StrictJson(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(object.into())
    }
}

const NOT_JSON: &str = "The request body must be JSON (Content-Type: application/json).";

#[rocket::async_trait]
impl<'r, T: DeserializeOwned> FromData<'r> for ApiJson<T> {
    type Error = Error;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let parsed = match is_json(req) {
            true => read_body(req, data, "json").await.and_then(|body| parse_json(&body)),
            false => Err(Error::UnsupportedMediaType(NOT_JSON.into())),
        };
        match parsed {
            Ok(value) => data::Outcome::Success(ApiJson(value)),
            Err(e) => data::Outcome::Error(e.stash(req)),
        }
    }
}

/// The form an app sends to an OpenID Connect endpoint (`application/x-www-form-urlencoded`,
/// RFC 6749): anything else is an `invalid_request`, as apps read errors there.
pub struct OAuthForm<T>(pub T);

#[rocket::async_trait]
impl<'r, T: for<'a> FromForm<'a> + Send + 'static> FromData<'r> for OAuthForm<T> {
    type Error = Error;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        let invalid =
            |description: &str| Error::OAuth { error: "invalid_request", description: description.into() };
        let parsed = match is_form(req) {
            true => read_body(req, data, "form").await.and_then(|body| {
                Form::<T>::parse_encoded(RawStr::new(&body))
                    .map_err(|_| invalid("The form could not be parsed."))
            }),
            false => Err(invalid("Send the request as an application/x-www-form-urlencoded form.")),
        };
        match parsed {
            Ok(form) => data::Outcome::Success(OAuthForm(form)),
            Err(e) => data::Outcome::Error(e.stash(req)),
        }
    }
}

/// What a request to `POST /auth/login` or `POST /auth/refresh` sent: a JSON body, or the
/// OAuth2 form (`application/x-www-form-urlencoded`) that OAuth2 client libraries send. Every
/// error of a form request, from its body to the handler's answer, is then one such a library
/// reads: RFC 6749's `error` member (see [`Error::for_oauth2`]); the JSON routes keep theirs.
pub struct OAuth2Or<T> {
    pub body: T,
    /// The request came as an OAuth2 form.
    pub oauth2: bool,
}

impl<T> OAuth2Or<T> {
    /// `result`, its error as the client reads errors.
    pub fn answer<R>(&self, result: Result<R>) -> Result<R> {
        match self.oauth2 {
            true => result.map_err(Error::for_oauth2),
            false => result,
        }
    }
}

/// Sign-in credentials: a JSON body, or the OAuth2 password form (optional
/// `grant_type=password`).
pub type LoginCredentials = OAuth2Or<Credentials>;

/// A refresh token: a JSON body, or the OAuth2 refresh form (optional
/// `grant_type=refresh_token`).
pub type RefreshCredentials = OAuth2Or<RefreshRequest>;

/// Reads a body of one of the two kinds.
pub trait OAuth2Body: Sized {
    /// The `grant_type` the form may name.
    const GRANT: &'static str;
    type Form: for<'a> FromForm<'a> + 'static;

    /// From the JSON body.
    fn json(body: &str) -> Result<Self>;
    /// From the form, and the `grant_type` it names.
    fn form(form: Self::Form) -> (Self, Option<String>);
    /// The body, when its fields are all there.
    fn checked(self) -> Result<Self>;
}

impl OAuth2Body for Credentials {
    const GRANT: &'static str = "password";
    type Form = CredentialsForm;

    fn json(body: &str) -> Result<Self> {
        let credentials: Credentials = parse_json(body)?;
        if credentials.grant_type.as_deref().is_some_and(|grant| grant != Self::GRANT) {
            return Err(Error::field("grant_type", "Only grant_type=password is supported."));
        }
        Ok(credentials)
    }

    fn form(form: CredentialsForm) -> (Self, Option<String>) {
        let grant = form.grant_type.clone();
        let credentials = Credentials {
            username: form.username,
            password: form.password.into(),
            grant_type: form.grant_type,
            device_token: form.device_token,
        };
        (credentials, grant)
    }

    fn checked(self) -> Result<Self> {
        // A blank name is simply unknown (401); only an empty field is missing.
        let mut fields = Fields::default();
        let username = fields.required("username", &self.username).is_some();
        let password = fields.required("password", self.password.expose_secret()).is_some();
        fields.finish((username && password).then_some(self))
    }
}

impl OAuth2Body for RefreshRequest {
    const GRANT: &'static str = "refresh_token";
    type Form = RefreshForm;

    fn json(body: &str) -> Result<Self> {
        parse_json(body)
    }

    fn form(form: RefreshForm) -> (Self, Option<String>) {
        (RefreshRequest { refresh_token: form.refresh_token }, form.grant_type)
    }

    fn checked(self) -> Result<Self> {
        crate::domain::required("refresh_token", &self.refresh_token)?;
        Ok(self)
    }
}

impl<T: OAuth2Body> OAuth2Or<T> {
    async fn parse(req: &Request<'_>, data: Data<'_>) -> Result<Self> {
        if is_json(req) {
            let body = T::json(&read_body(req, data, "json").await?)?.checked()?;
            return Ok(OAuth2Or { body, oauth2: false });
        }
        if !is_form(req) {
            return Err(Error::UnsupportedMediaType(
                "Send JSON or an application/x-www-form-urlencoded form.".into(),
            ));
        }
        let read = async {
            let body = read_body(req, data, "form").await?;
            // Parameters it does not know are ignored, as RFC 6749 (§3.2) asks: a library may
            // add its `client_id` or a `scope`.
            let form = Form::<Lenient<T::Form>>::parse_encoded(RawStr::new(&body))
                .map_err(|_| Error::BadRequest("The form body could not be parsed.".into()))?;
            let (body, grant) = T::form(form.into_inner());
            if let Some(grant) = grant.filter(|grant| grant != T::GRANT) {
                return Err(Error::OAuth {
                    error: "unsupported_grant_type",
                    description: format!("grant_type must be {}, not {grant:?}.", T::GRANT),
                });
            }
            body.checked()
        };
        let body = read.await.map_err(Error::for_oauth2)?;
        Ok(OAuth2Or { body, oauth2: true })
    }
}

#[rocket::async_trait]
impl<'r, T: OAuth2Body + Send + 'static> FromData<'r> for OAuth2Or<T> {
    type Error = Error;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match OAuth2Or::parse(req, data).await {
            Ok(parsed) => data::Outcome::Success(parsed),
            Err(e) => data::Outcome::Error(e.stash(req)),
        }
    }
}

/// A page's form (`application/x-www-form-urlencoded`) whose `csrf_token` field was verified
/// before the handler runs: a missing or wrong token is a 403 and the handler never sees the
/// form, so a handler cannot forget the check. It carries the visitor's token too, for a form
/// shown again.
pub struct CsrfForm<T> {
    pub fields: T,
    pub csrf: CsrfToken,
}

/// Only the token, read leniently beside the form's own fields.
#[derive(FromForm)]
struct TokenField {
    #[field(default = String::new())]
    csrf_token: String,
}

/// A form of nothing but its CSRF token: a button (`CsrfForm<Button>`).
#[derive(FromForm)]
pub struct Button {
    /// Checked already; a form needs at least one field.
    #[field(name = "csrf_token", default = String::new())]
    _token: String,
}

impl<T: for<'a> FromForm<'a> + Send + 'static> CsrfForm<T> {
    async fn parse(req: &Request<'_>, data: Data<'_>) -> Result<Self> {
        if !is_form(req) {
            return Err(Error::UnsupportedMediaType(
                "Send the form as application/x-www-form-urlencoded.".into(),
            ));
        }
        let body = read_body(req, data, "form").await?;
        let body = RawStr::new(&body);
        let Outcome::Success(csrf) = req.guard::<CsrfToken>().await else {
            return Err(Error::internal("the CSRF token is missing"));
        };
        let submitted = Form::<TokenField>::parse_encoded(body).map(|t| t.csrf_token).unwrap_or_default();
        csrf.verify(&submitted, state::<CsrfKey>(req)?)?;
        let fields = Form::<T>::parse_encoded(body)
            .map_err(|_| Error::BadRequest("The form could not be read.".into()))?;
        Ok(CsrfForm { fields, csrf })
    }
}

#[rocket::async_trait]
impl<'r, T: for<'a> FromForm<'a> + Send + 'static> FromData<'r> for CsrfForm<T> {
    type Error = Error;

    async fn from_data(req: &'r Request<'_>, data: Data<'r>) -> data::Outcome<'r, Self> {
        match CsrfForm::parse(req, data).await {
            Ok(form) => data::Outcome::Success(form),
            Err(e) => data::Outcome::Error(e.stash(req)),
        }
    }
}
