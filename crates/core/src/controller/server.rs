//! The `server` controller: now, info, healthCheck, publicApi.

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::request::{Request, now_millis};
use crate::router::{Router, action_not_found};

pub(crate) fn execute(router: &Router, request: &Request) -> Result<Value, ApiError> {
    match request.action.as_str() {
        "now" => Ok(json!({ "now": now_millis() })),
        "healthCheck" => Ok(json!({ "status": "green", "services": {} })),
        "info" => Ok(info(router)),
        "publicApi" => Ok(public_api(router)),
        _ => Err(action_not_found(request)),
    }
}

fn info(router: &Router) -> Value {
    let (rooms, subscribers) = router.realtime_sizes();
    json!({
        "serverInfo": {
            "kuzzle": {
                "name": "protoplex",
                "version": env!("CARGO_PKG_VERSION"),
                "node": router.config().node_id,
                "uptime": format!("{}s", router.uptime().as_secs()),
                "protocols": router.protocol_names(),
                "api": { "routes": public_api(router) },
                "realtime": { "rooms": rooms, "subscribers": subscribers },
                "connections": router.connection_count(),
                "limits": router.config().limits,
            },
            "services": {}
        }
    })
}

/// `{controller: {action: {controller, action, http?: [{verb, path, url}]}}}`, as
/// Kuzzle's `server:publicApi`, custom controllers included.
fn public_api(router: &Router) -> Value {
    let mut api = Map::new();
    for (controller, actions) in router.api() {
        let mut entries = Map::new();
        for action in actions {
            let mut entry = json!({ "controller": controller, "action": action.name });
            if !action.http.is_empty() {
                entry["http"] = action
                    .http
                    .iter()
                    .map(|route| json!({ "verb": route.verb, "path": route.path, "url": route.path }))
                    .collect();
            }
            entries.insert(action.name.clone(), entry);
        }
        api.insert(controller.clone(), Value::Object(entries));
    }
    Value::Object(api)
}
