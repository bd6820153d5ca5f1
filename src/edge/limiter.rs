//! The Durable Object class `GatewayLimiter` (binding `GATEWAY_LIMITER`): one
//! object per global counter, keeping its [`Book`] in the object's storage so
//! that a restart or an eviction keeps the count.
//!
//! Each call is applied to the book in memory synchronously (the object runs
//! one event at a time between awaits, so no two calls interleave inside
//! `apply`), then the book is written; the runtime's output gate holds the
//! answer until the write is durable, so a grant is never answered and then
//! forgotten.

use std::cell::RefCell;

use worker::{durable_object, DurableObject, Env, Request, Response, Result, State};

use crate::policy::ratelimit::global::{Book, LeaseCall};

/// The storage key of the book.
const BOOK_KEY: &str = "book";

#[durable_object(alarm)]
pub struct GatewayLimiter {
    state: State,
    /// Loaded from storage on the first call.
    book: RefCell<Option<Book>>,
    /// The alarm set, in ms (when the book may be deleted).
    alarm_at: RefCell<Option<u64>>,
}

impl GatewayLimiter {
    async fn load(&self) -> Result<()> {
        if self.book.borrow().is_some() {
            return Ok(());
        }
        let stored: Option<String> = self.state.storage().get(BOOK_KEY).await?;
        let book = stored
            .and_then(|text| serde_json::from_str::<Book>(&text).ok())
            .unwrap_or_default();
        let mut slot = self.book.borrow_mut();
        if slot.is_none() {
            *slot = Some(book);
        }
        Ok(())
    }
}

impl DurableObject for GatewayLimiter {
    fn new(state: State, _env: Env) -> Self {
        GatewayLimiter {
            state,
            book: RefCell::new(None),
            alarm_at: RefCell::new(None),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let text = req.text().await?;
        let call: LeaseCall = match serde_json::from_str(&text) {
            Ok(call) => call,
            Err(e) => return Response::error(format!("bad lease call: {e}"), 400),
        };
        self.load().await?;
        let now = worker::js_sys::Date::now() as u64;
        let (reply, stored, expires) = {
            let mut slot = self.book.borrow_mut();
            let book = slot.get_or_insert_with(Book::default);
            let reply = book.apply(&call, now);
            let stored = serde_json::to_string(&*book).map_err(|e| e.to_string())?;
            (reply, stored, book.expires_at_ms())
        };
        self.state.storage().put(BOOK_KEY, stored).await?;
        if let Some(at) = expires {
            let later = self.alarm_at.borrow().is_none_or(|set| set < at);
            if later {
                *self.alarm_at.borrow_mut() = Some(at);
                let offset = i64::try_from(at.saturating_sub(now)).unwrap_or(i64::MAX);
                self.state.storage().set_alarm(offset.max(1)).await?;
            }
        }
        Response::from_json(&reply)
    }

    async fn alarm(&self) -> Result<Response> {
        self.load().await?;
        let now = worker::js_sys::Date::now() as u64;
        let expires = self.book.borrow().as_ref().and_then(Book::expires_at_ms);
        match expires {
            // Every period is over and past its grace: calls for them are refused
            // anyway, so the storage can go.
            None => {
                self.state.storage().delete_all().await?;
                *self.book.borrow_mut() = Some(Book::default());
                *self.alarm_at.borrow_mut() = None;
            }
            Some(at) if at <= now => {
                self.state.storage().delete_all().await?;
                *self.book.borrow_mut() = Some(Book::default());
                *self.alarm_at.borrow_mut() = None;
            }
            Some(at) => {
                *self.alarm_at.borrow_mut() = Some(at);
                let offset = i64::try_from(at - now).unwrap_or(i64::MAX);
                self.state.storage().set_alarm(offset.max(1)).await?;
            }
        }
        Response::ok("")
    }
}
