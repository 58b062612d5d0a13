//! `Body<T>`: a JSON request body whose errors come back in OpenAI's shape, read leniently
//! the way OpenAI's own endpoints read it (`stop` as one string, `prompt` as a one-element
//! list, chat `content` as a list of text parts).

use crate::error::ApiError;
use axum::extract::{FromRequest, Json, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let Json(mut v) = Json::<Value>::from_request(req, state).await?;
        normalize(&mut v)?;
        serde_json::from_value(v).map(Body).map_err(|e| ApiError::BadRequest(format!("invalid request: {e}")))
    }
}

/// Rewrites OpenAI's alternative field shapes into the one the wire types take.
fn normalize(v: &mut Value) -> Result<(), ApiError> {
    let Some(o) = v.as_object_mut() else { return Err(ApiError::BadRequest("the request body must be a JSON object".into())) };
    match o.get("stop") {
        Some(Value::String(s)) => {
            let s = s.clone();
            o.insert("stop".into(), Value::Array(vec![Value::String(s)]));
        }
        Some(Value::Null) => {
            o.remove("stop");
        }
        _ => {}
    }
    if let Some(Value::Array(prompts)) = o.get("prompt") {
        match prompts.as_slice() {
            [Value::String(p)] => {
                let p = p.clone();
                o.insert("prompt".into(), Value::String(p));
            }
            _ => return Err(ApiError::BadRequest("send one prompt per request, as a string (token-id prompts and prompt lists are not supported)".into())),
        }
    }
    if let Some(Value::Array(messages)) = o.get_mut("messages") {
        for m in messages {
            if let Some(Value::Array(parts)) = m.get("content") {
                let mut text = String::new();
                for p in parts {
                    match (p.get("type").and_then(Value::as_str), p.get("text").and_then(Value::as_str)) {
                        (Some("text"), Some(t)) => text.push_str(t),
                        (kind, _) => return Err(ApiError::BadRequest(format!("message parts of type {} are not supported; send text", kind.unwrap_or("(none)")))),
                    }
                }
                m["content"] = Value::String(text);
            }
            if m.get("content").is_some_and(Value::is_null) {
                m["content"] = Value::String(String::new());
            }
        }
    }
    // Explicit nulls mean "not given".
    o.retain(|_, v| !v.is_null());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openai_shapes_become_the_wire_types() {
        let mut v = json!({"prompt": ["Once"], "stop": "\n", "max_tokens": null, "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]});
        normalize(&mut v).unwrap();
        assert_eq!(v, json!({"prompt": "Once", "stop": ["\n"], "messages": [{"role": "user", "content": "ab"}]}));
        assert!(normalize(&mut json!({"prompt": ["a", "b"]})).is_err());
        assert!(normalize(&mut json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})).is_err());
        assert!(normalize(&mut json!([1])).is_err());
    }
}
