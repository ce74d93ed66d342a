//! Single-use, expiring tokens, each bound to one registered request: the
//! last path segment of the URLs the server hands out.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::runtime::{AttachRequest, ExecRequest, PortForwardRequest, RequestError};

/// A registered request, waiting for its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `/exec/{token}`.
    Exec(ExecRequest),
    /// `/attach/{token}`.
    Attach(AttachRequest),
    /// `/portforward/{token}`.
    PortForward(PortForwardRequest),
}

impl Request {
    /// The URL path segment of this kind of request.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Exec(_) => "exec",
            Request::Attach(_) => "attach",
            Request::PortForward(_) => "portforward",
        }
    }
}

/// The requests waiting for their client, by token.
#[derive(Debug)]
pub struct RequestCache {
    ttl: Duration,
    max_in_flight: usize,
    entries: Mutex<HashMap<String, (Request, Instant)>>,
}

impl RequestCache {
    /// A cache whose tokens expire after `ttl`, holding at most
    /// `max_in_flight` requests.
    pub fn new(ttl: Duration, max_in_flight: usize) -> RequestCache {
        RequestCache {
            ttl,
            max_in_flight,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `request` and returns its new token (128 random bits,
    /// URL-safe base64).
    pub fn insert(&self, request: Request) -> Result<String, RequestError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if entries.len() >= self.max_in_flight {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.max_in_flight {
                return Err(RequestError::TooMany(self.max_in_flight));
            }
        }
        let token = loop {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes).expect("the kernel's random source");
            let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
            if !entries.contains_key(&token) {
                break token;
            }
        };
        entries.insert(token.clone(), (request, now + self.ttl));
        Ok(token)
    }

    /// Takes the request of `token` if it is of kind `kind` and has not
    /// expired. A token is good for one take; a wrong kind leaves it.
    pub fn take(&self, kind: &str, token: &str) -> Option<Request> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let (request, expires) = entries.get(token)?;
        if request.kind() != kind {
            return None;
        }
        let fresh = *expires > Instant::now();
        let (request, _) = entries.remove(token)?;
        fresh.then_some(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pf() -> Request {
        Request::PortForward(PortForwardRequest {
            pod_sandbox_id: "p".into(),
            ports: vec![],
        })
    }

    #[test]
    fn tokens_are_single_use_and_bound_to_their_kind() {
        let cache = RequestCache::new(Duration::from_secs(60), 10);
        let token = cache.insert(pf()).unwrap();
        assert_eq!(token.len(), 22);
        assert!(cache.take("exec", &token).is_none());
        assert_eq!(cache.take("portforward", &token), Some(pf()));
        assert!(cache.take("portforward", &token).is_none());
        assert!(cache.take("portforward", "nope").is_none());
    }

    #[test]
    fn tokens_expire_and_make_room() {
        let cache = RequestCache::new(Duration::from_millis(20), 2);
        let first = cache.insert(pf()).unwrap();
        cache.insert(pf()).unwrap();
        assert!(matches!(cache.insert(pf()), Err(RequestError::TooMany(2))));
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.take("portforward", &first).is_none());
        // Expired entries are dropped to make room.
        cache.insert(pf()).unwrap();
        cache.insert(pf()).unwrap();
    }
}
