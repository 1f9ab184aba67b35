//! The compatibility guard of `openapi_compat.rs`: which changes between two OpenAPI specs can
//! break a client written against the older one.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde_json::Value;

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// The newest released spec by semantic version: (file name, spec).
pub fn newest_release() -> (String, Value) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../openapi/released");
    let newest = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| {
            let version = name.strip_prefix("openapi-")?.strip_suffix(".json")?;
            let parts: Vec<u64> = version
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            Some((parts, name))
        })
        .max()
        .map(|(_, name)| name)
        .unwrap_or_else(|| panic!("no openapi-X.Y.Z.json in {}", dir.display()));
    let text = std::fs::read_to_string(dir.join(&newest)).unwrap();
    (newest, serde_json::from_str(&text).unwrap())
}

/// Which way data flows: clients send requests and read responses, so compatibility rules differ.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Direction {
    Request,
    Response,
}

/// Every change from `old` to `new` that can break a client written against `old`.
pub fn breaking_changes(old: &Value, new: &Value) -> Vec<String> {
    let mut diff = Diff {
        old,
        new,
        breaks: Vec::new(),
        seen: BTreeSet::new(),
    };
    for (path, old_item) in entries(&old["paths"]) {
        let Some(new_item) = new["paths"].get(path) else {
            diff.breaks.push(format!("path {path} was removed"));
            continue;
        };
        for &method in METHODS {
            let Some(old_op) = old_item.get(method) else {
                continue;
            };
            let operation = format!("{} {path}", method.to_uppercase());
            match new_item.get(method) {
                Some(new_op) => diff.operation(&operation, (old_item, old_op), (new_item, new_op)),
                None => diff
                    .breaks
                    .push(format!("{operation}: operation was removed")),
            }
        }
    }
    diff.breaks
}

struct Diff<'a> {
    old: &'a Value,
    new: &'a Value,
    breaks: Vec<String>,
    /// Pairs of named schemas already compared, with the direction.
    seen: BTreeSet<(String, String, String)>,
}

impl Diff<'_> {
    fn operation(&mut self, at: &str, old: (&Value, &Value), new: (&Value, &Value)) {
        let (old_item, old_op) = old;
        let (new_item, new_op) = new;
        if let Some(before) = old_op["operationId"].as_str() {
            let after = new_op["operationId"].as_str();
            if after != Some(before) {
                let after = after.map_or("nothing".to_string(), |after| format!("`{after}`"));
                self.breaks.push(format!(
                    "{at}: operationId changed from `{before}` to {after} (generated clients name \
                     their methods after it)"
                ));
            }
        }

        let old_params = parameters(old_item, old_op);
        let new_params = parameters(new_item, new_op);
        for ((place, name), old_param) in &old_params {
            let label = format!("{at}: {place} parameter `{name}`");
            let Some(new_param) = new_params.get(&(place.clone(), name.clone())) else {
                self.breaks.push(format!("{label} was removed"));
                continue;
            };
            if !is_true(&old_param["required"]) && is_true(&new_param["required"]) {
                self.breaks.push(format!("{label} became required"));
            }
            self.schema(
                &label,
                &old_param["schema"],
                &new_param["schema"],
                Direction::Request,
            );
        }
        for ((place, name), new_param) in &new_params {
            if !old_params.contains_key(&(place.clone(), name.clone()))
                && is_true(&new_param["required"])
            {
                self.breaks
                    .push(format!("{at}: new required {place} parameter `{name}`"));
            }
        }

        match (old_op.get("requestBody"), new_op.get("requestBody")) {
            (None, Some(body)) if is_true(&body["required"]) => self
                .breaks
                .push(format!("{at}: a required request body was added")),
            (Some(_), None) => self
                .breaks
                .push(format!("{at}: the request body was removed")),
            (Some(old_body), Some(new_body)) => {
                if !is_true(&old_body["required"]) && is_true(&new_body["required"]) {
                    self.breaks
                        .push(format!("{at}: the request body became required"));
                }
                self.content(
                    &format!("{at}: request body"),
                    old_body,
                    new_body,
                    Direction::Request,
                );
            }
            _ => {}
        }

        for (status, old_response) in entries(&old_op["responses"]) {
            let label = format!("{at}: response {status}");
            let Some(new_response) = new_op["responses"].get(status) else {
                self.breaks.push(format!("{label} was removed"));
                continue;
            };
            for (header, _) in entries(&old_response["headers"]) {
                let kept = entries(&new_response["headers"])
                    .any(|(name, _)| name.eq_ignore_ascii_case(header));
                if !kept {
                    self.breaks
                        .push(format!("{label}: header `{header}` was removed"));
                }
            }
            self.content(&label, old_response, new_response, Direction::Response);
        }
    }

    /// Compares the media types of a request body or response (matched by their essence, so a
    /// `charset` parameter alone changes nothing).
    fn content(&mut self, at: &str, old: &Value, new: &Value, direction: Direction) {
        for (media_type, old_media) in entries(&old["content"]) {
            let essence = essence(media_type);
            let Some((_, new_media)) =
                entries(&new["content"]).find(|(other, _)| self::essence(other) == essence)
            else {
                self.breaks
                    .push(format!("{at}: media type `{media_type}` was removed"));
                continue;
            };
            self.schema(
                &format!("{at} ({essence})"),
                &old_media["schema"],
                &new_media["schema"],
                direction,
            );
        }
    }

    fn schema(&mut self, at: &str, old: &Value, new: &Value, direction: Direction) {
        let (old_ref, old) = resolve(self.old, old);
        let (new_ref, new) = resolve(self.new, new);
        if let (Some(old_ref), Some(new_ref)) = (old_ref, new_ref) {
            // Each pair of named schemas is compared once per direction: that ends recursive
            // schemas, and a break in a shared schema is reported once, where it is first reached.
            let direction = format!("{direction:?}");
            if !self.seen.insert((old_ref, new_ref, direction)) {
                return;
            }
        }

        if let Some(old_type) = old.get("type") {
            let old_kind = kind(old);
            let new_kind = kind(new);
            if new.get("type") != Some(old_type) || old.get("format") != new.get("format") {
                self.breaks
                    .push(format!("{at}: type changed from {old_kind} to {new_kind}"));
                return;
            }
        }
        if direction == Direction::Response
            && !is_true(&old["nullable"])
            && is_true(&new["nullable"])
        {
            self.breaks.push(format!("{at}: may now be null"));
        }
        if let Some(values) = old["enum"].as_array() {
            let kept = new["enum"].as_array();
            for value in values {
                if kept.is_some_and(|kept| !kept.contains(value)) {
                    self.breaks
                        .push(format!("{at}: enum value {value} was removed"));
                }
            }
        }

        let old_required = names(&old["required"]);
        let new_required = names(&new["required"]);
        for (name, old_property) in entries(&old["properties"]) {
            let label = format!("{at} → `{name}`");
            let Some(new_property) = new["properties"].get(name) else {
                self.breaks.push(format!("{label} was removed"));
                continue;
            };
            match direction {
                Direction::Request
                    if !old_required.contains(name) && new_required.contains(name) =>
                {
                    self.breaks.push(format!("{label} became required"));
                }
                Direction::Response
                    if old_required.contains(name) && !new_required.contains(name) =>
                {
                    self.breaks
                        .push(format!("{label} is no longer always present"));
                }
                _ => {}
            }
            self.schema(&label, old_property, new_property, direction);
        }
        if direction == Direction::Request {
            for name in new_required.difference(&old_required) {
                if old["properties"].get(name.as_str()).is_none() {
                    self.breaks
                        .push(format!("{at}: new required field `{name}`"));
                }
            }
        }

        for (key, suffix) in [("items", "[]"), ("additionalProperties", "{}")] {
            if old[key].is_object() && new[key].is_object() {
                self.schema(&format!("{at}{suffix}"), &old[key], &new[key], direction);
            }
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            let Some(old_parts) = old[key].as_array() else {
                continue;
            };
            match new[key].as_array() {
                Some(new_parts) if new_parts.len() == old_parts.len() => {
                    for (index, (old_part, new_part)) in old_parts.iter().zip(new_parts).enumerate()
                    {
                        self.schema(
                            &format!("{at} ({key}[{index}])"),
                            old_part,
                            new_part,
                            direction,
                        );
                    }
                }
                _ => self.breaks.push(format!("{at}: `{key}` changed")),
            }
        }
    }
}

/// The key/value pairs of a JSON object (none for anything else).
fn entries(value: &Value) -> impl Iterator<Item = (&String, &Value)> {
    value.as_object().into_iter().flatten()
}

fn is_true(value: &Value) -> bool {
    value.as_bool() == Some(true)
}

fn names(value: &Value) -> BTreeSet<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

fn essence(media_type: &str) -> &str {
    media_type.split(';').next().unwrap_or_default().trim()
}

/// `type` and `format` for messages, e.g. `integer (uint32)`.
fn kind(schema: &Value) -> String {
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some(ty), Some(format)) => format!("`{ty}` ({format})"),
        (Some(ty), None) => format!("`{ty}`"),
        _ => "any type".to_string(),
    }
}

/// Parameters of an operation, with those of its path item, by (location, name).
fn parameters<'a>(
    item: &'a Value,
    operation: &'a Value,
) -> std::collections::BTreeMap<(String, String), &'a Value> {
    [&item["parameters"], &operation["parameters"]]
        .into_iter()
        .filter_map(Value::as_array)
        .flatten()
        .map(|p| {
            let key = |field: &str| p[field].as_str().unwrap_or_default().to_string();
            ((key("in"), key("name")), p)
        })
        .collect()
}

/// Follows a local `$ref` (`#/components/schemas/Name`), and an `allOf` whose parts other than one
/// only annotate it (how a reference with a description is written: `allOf: [{$ref}, {description}]`)
/// to that part; returns the last reference followed and the schema.
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> (Option<String>, &'a Value) {
    if let Some(reference) = schema["$ref"].as_str() {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| root.pointer(pointer))
            .unwrap_or_else(|| panic!("unresolvable $ref {reference}"));
        let (inner, target) = resolve(root, target);
        return (inner.or_else(|| Some(reference.to_string())), target);
    }
    if schema.get("type").is_none() {
        if let Some(parts) = schema["allOf"].as_array() {
            let annotation =
                |part: &Value| entries(part).all(|(key, _)| ANNOTATIONS.contains(&key.as_str()));
            let mut substantive = parts.iter().filter(|part| !annotation(part));
            if let (Some(part), None) = (substantive.next(), substantive.next()) {
                return resolve(root, part);
            }
        }
    }
    (None, schema)
}

/// Schema keywords that document without constraining.
const ANNOTATIONS: &[&str] = &["description", "title", "example", "deprecated"];
