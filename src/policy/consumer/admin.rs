//! `/__gateway/consumers`: the admin API over consumers and their keys, with
//! the admin token. A change holds at once in the isolate that made it (its
//! key cache is updated) and everywhere within KV's propagation plus
//! [`super::POSITIVE_TTL_MS`].
//!
//! ```text
//! POST   /__gateway/consumers                       {"id", "plan", "metadata"}  201, 409, 400
//! GET    /__gateway/consumers/ID                    200 (keys without the key; quota use), 404
//! PATCH  /__gateway/consumers/ID                    {"plan"?, "metadata"?}      200
//! DELETE /__gateway/consumers/ID                    204: its keys stop working
//! POST   /__gateway/consumers/ID/keys               201 {"key_id", "key"}: the only time a key is shown
//! DELETE /__gateway/consumers/ID/keys/KEY_ID        204: the key stops working
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use super::phase::Consumers;
use super::{
    check_metadata, consumer_kv_key, generate_key, hash_key, is_consumer_id, is_key_id, key_id,
    key_kv_key, period_bounds, quota_counter, ConsumerRecord, ConsumerRef, KeyRecord, StoredKey,
    KEY_RANDOM_BYTES, MAX_KEYS,
};
use crate::gateway::Gateway;
use crate::http::headers::HeaderEdits;
use crate::http::problem::{Kind, Problem};
use crate::http::HeaderView;
use crate::pipeline::{Body, Incoming, IsolateState, Reply};
use crate::policy::ratelimit::global::LeaseCall;
use crate::ports::Ports;

/// Largest admin request body read, in bytes.
pub const MAX_ADMIN_BODY: usize = 16 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Create {
    id: String,
    plan: String,
    #[serde(default)]
    metadata: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    #[serde(default)]
    plan: Option<String>,
    #[serde(default)]
    metadata: Option<BTreeMap<String, String>>,
}

/// One admin request, already authorized.
pub struct Admin<'a, P, H: HeaderView + ?Sized> {
    pub gw: &'a Gateway,
    pub state: &'a IsolateState,
    pub ports: &'a P,
    pub req: &'a Incoming<'a, H>,
}

fn reply<R>(status: u16, body: Option<serde_json::Value>) -> Reply<R> {
    let mut headers = HeaderEdits::default();
    headers.set("cache-control", "no-store");
    let body = match body {
        Some(v) => Body::Own(v.to_string(), "application/json"),
        None => Body::Empty,
    };
    Reply::own(status, body, headers)
}

fn unavailable() -> Problem {
    Problem::new(Kind::Unavailable, "the consumer store cannot be reached")
        .with_header("retry-after", "5")
}

fn not_found(id: &str) -> Problem {
    Problem::new(Kind::NotFound, format!("no consumer \"{id}\""))
}

fn bad(detail: impl Into<std::borrow::Cow<'static, str>>) -> Problem {
    Problem::new(Kind::BadRequest, detail)
}

fn not_allowed(allow: &'static str) -> Problem {
    Problem::new(Kind::MethodNotAllowed, format!("this path allows {allow}"))
        .with_header("allow", allow)
}

impl<P: Ports, H: HeaderView + ?Sized> Admin<'_, P, H> {
    fn consumers(&self) -> Result<&Consumers, Problem> {
        self.gw.consumers.as_ref().ok_or_else(|| {
            Problem::new(
                Kind::NotFound,
                "consumers are not configured: the routes file has no plans",
            )
        })
    }

    /// Answers `rest`, the path after `/__gateway/consumers`.
    pub async fn handle(&self, rest: &str) -> Result<Reply<P::Response>, Problem> {
        self.consumers()?;
        let parts: Vec<&str> = rest.split('/').skip(1).collect();
        let method = self.req.method;
        match (parts.as_slice(), method) {
            ([] | [""], "POST") => self.create().await,
            ([] | [""], _) => Err(not_allowed("POST")),
            ([id], "GET") => self.read(id).await,
            ([id], "PATCH") => self.change(id).await,
            ([id], "DELETE") => self.delete(id).await,
            ([_], _) => Err(not_allowed("GET, PATCH, DELETE")),
            ([id, "keys"], "POST") => self.add_key(id).await,
            ([_, "keys"], _) => Err(not_allowed("POST")),
            ([id, "keys", key], "DELETE") => self.revoke(id, key).await,
            ([_, "keys", _], _) => Err(not_allowed("DELETE")),
            _ => Err(Problem::new(Kind::NotFound, "no such gateway endpoint")),
        }
    }

    async fn body<T: for<'de> Deserialize<'de>>(&self) -> Result<T, Problem> {
        let bytes = self
            .ports
            .read_body(MAX_ADMIN_BODY as u64)
            .await
            .map_err(|e| match e {
                crate::ports::BodyError::TooLarge => Problem::new(
                    Kind::PayloadTooLarge,
                    format!("admin request bodies are at most {MAX_ADMIN_BODY} bytes"),
                ),
                crate::ports::BodyError::Read(_) => bad("the request body could not be read"),
            })?;
        serde_json::from_slice(&bytes).map_err(|e| bad(format!("the body is not valid: {e}")))
    }

    async fn load(&self, id: &str) -> Result<ConsumerRecord, Problem> {
        if !is_consumer_id(id) {
            return Err(not_found(id));
        }
        let text = self
            .ports
            .kv_get(&consumer_kv_key(id))
            .await
            .map_err(|_| unavailable())?
            .ok_or_else(|| not_found(id))?;
        serde_json::from_str(&text)
            .map_err(|_| Problem::new(Kind::Unavailable, "the stored consumer cannot be read"))
    }

    async fn save(&self, record: &ConsumerRecord) -> Result<(), Problem> {
        let text = serde_json::to_string(record).map_err(|_| unavailable())?;
        self.ports
            .kv_put_record(&consumer_kv_key(&record.id), &text)
            .await
            .map_err(|_| unavailable())
    }

    fn check_plan(&self, plan: &str) -> Result<(), Problem> {
        match self.consumers()?.plan(plan) {
            Some(_) => Ok(()),
            None => Err(bad(format!("no plan \"{plan}\" in the routes file"))),
        }
    }

    fn now_s(&self) -> u64 {
        self.ports.now_ms() / 1000
    }

    async fn create(&self) -> Result<Reply<P::Response>, Problem> {
        let body: Create = self.body().await?;
        if !is_consumer_id(&body.id) {
            return Err(bad("id must match [A-Za-z0-9._-]{1,64}"));
        }
        self.check_plan(&body.plan)?;
        check_metadata(&body.metadata).map_err(bad)?;
        let existing = self
            .ports
            .kv_get(&consumer_kv_key(&body.id))
            .await
            .map_err(|_| unavailable())?;
        if existing.is_some() {
            return Err(Problem::new(
                Kind::Conflict,
                format!("consumer \"{}\" exists", body.id),
            ));
        }
        let record = ConsumerRecord {
            id: body.id,
            plan: body.plan,
            metadata: body.metadata,
            created: self.now_s(),
            keys: Vec::new(),
        };
        self.save(&record).await?;
        Ok(reply(201, Some(record.view())))
    }

    async fn read(&self, id: &str) -> Result<Reply<P::Response>, Problem> {
        let record = self.load(id).await?;
        let mut view = record.view();
        let quota = self.consumers()?.plan(&record.plan).and_then(|p| p.quota);
        if let Some(q) = quota {
            let now = self.ports.now_ms();
            let (start_ms, end_ms) = period_bounds(now, q.period);
            let ask = LeaseCall {
                counter: quota_counter(&record.id, q.period),
                start_ms,
                end_ms,
                limit: q.requests,
                holder: String::new(),
                want: 0,
                give_back: 0,
            };
            // Units leased to isolates count as used until they are given back.
            let used = match self.ports.limiter_call(&ask).await {
                Ok(r) => serde_json::json!(q.requests.saturating_sub(r.available)),
                Err(_) => serde_json::Value::Null,
            };
            view["quota"] = serde_json::json!({
                "limit": q.requests,
                "period": super::phase::period_name(q.period),
                "used": used,
                "reset_s": end_ms.saturating_sub(now).div_ceil(1000),
            });
        }
        Ok(reply(200, Some(view)))
    }

    /// Writes every key record of `record` again (with its plan), and
    /// updates this isolate's key cache.
    async fn write_key_records(&self, record: &ConsumerRecord) -> Result<(), Problem> {
        for k in &record.keys {
            self.put_key_record(record, k).await?;
        }
        Ok(())
    }

    async fn put_key_record(&self, record: &ConsumerRecord, k: &StoredKey) -> Result<(), Problem> {
        let text = serde_json::to_string(&KeyRecord {
            consumer: record.id.clone(),
            plan: record.plan.clone(),
            key_id: k.key_id.clone(),
        })
        .map_err(|_| unavailable())?;
        self.ports
            .kv_put_record(&key_kv_key(&k.hash), &text)
            .await
            .map_err(|_| unavailable())?;
        let found = ConsumerRef {
            id: record.id.clone(),
            plan: record.plan.clone(),
        };
        self.state
            .keys
            .borrow_mut()
            .put(&k.hash, Some(found), self.ports.now_ms());
        Ok(())
    }

    async fn drop_key(&self, k: &StoredKey) -> Result<(), Problem> {
        // Forgotten here first: even if KV fails, this isolate refuses the key.
        self.state
            .keys
            .borrow_mut()
            .put(&k.hash, None, self.ports.now_ms());
        self.ports
            .kv_delete(&key_kv_key(&k.hash))
            .await
            .map_err(|_| unavailable())
    }

    async fn change(&self, id: &str) -> Result<Reply<P::Response>, Problem> {
        let mut record = self.load(id).await?;
        let body: Change = self.body().await?;
        if let Some(plan) = body.plan {
            self.check_plan(&plan)?;
            record.plan = plan;
        }
        if let Some(metadata) = body.metadata {
            check_metadata(&metadata).map_err(bad)?;
            record.metadata = metadata;
        }
        self.save(&record).await?;
        self.write_key_records(&record).await?;
        Ok(reply(200, Some(record.view())))
    }

    async fn delete(&self, id: &str) -> Result<Reply<P::Response>, Problem> {
        let record = self.load(id).await?;
        for k in &record.keys {
            self.drop_key(k).await?;
        }
        self.ports
            .kv_delete(&consumer_kv_key(id))
            .await
            .map_err(|_| unavailable())?;
        Ok(reply(204, None))
    }

    async fn add_key(&self, id: &str) -> Result<Reply<P::Response>, Problem> {
        let mut record = self.load(id).await?;
        if record.keys.len() >= MAX_KEYS {
            return Err(Problem::new(
                Kind::Conflict,
                format!("a consumer has at most {MAX_KEYS} keys: revoke one first"),
            ));
        }
        let (a, b) = (self.ports.random_bytes(), self.ports.random_bytes());
        let mut random = [0u8; KEY_RANDOM_BYTES];
        random[..16].copy_from_slice(&a);
        random[16..].copy_from_slice(&b[..8]);
        let key = generate_key(&random);
        let mut id_bytes = [0u8; 9];
        id_bytes.copy_from_slice(&self.ports.random_bytes()[..9]);
        let stored = StoredKey {
            key_id: key_id(&id_bytes),
            created: self.now_s(),
            last4: key[key.len() - 4..].to_string(),
            hash: hash_key(&key),
        };
        record.keys.push(stored.clone());
        self.save(&record).await?;
        self.put_key_record(&record, &stored).await?;
        Ok(reply(
            201,
            Some(serde_json::json!({
                "consumer": record.id,
                "key_id": stored.key_id,
                "key": key,
            })),
        ))
    }

    async fn revoke(&self, id: &str, key: &str) -> Result<Reply<P::Response>, Problem> {
        let mut record = self.load(id).await?;
        let found = is_key_id(key)
            .then(|| record.keys.iter().position(|k| k.key_id == key))
            .flatten()
            .ok_or_else(|| {
                Problem::new(
                    Kind::NotFound,
                    format!("consumer \"{id}\" has no key \"{key}\""),
                )
            })?;
        let stored = record.keys.remove(found);
        self.drop_key(&stored).await?;
        self.save(&record).await?;
        Ok(reply(204, None))
    }
}
