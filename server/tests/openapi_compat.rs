//! Compatibility guard: the spec the code generates must not break clients generated from the last
//! released spec, the newest `openapi/released/openapi-X.Y.Z.json`. Additions (paths, operations,
//! optional inputs, response properties, enum values, status codes) are fine; removals, type or
//! format changes, inputs that became required and renamed operation ids are not. On purpose
//! breaking changes need a new major version (and a new file in `openapi/released/`).
//!
//! The drift test (`openapi_drift.rs`) keeps `openapi/openapi.json` equal to the code; this one
//! keeps the code compatible with what was released.

// Only this binary uses the guard: included here rather than from `common/mod.rs`.
#[path = "common/openapi_guard.rs"]
mod guard;

use guard::{breaking_changes, newest_release};
use serde_json::Value;

#[test]
fn generated_spec_is_compatible_with_the_last_release() {
    let (file, released) = newest_release();
    let current: Value = serde_json::from_str(&sprig::api::spec_json()).unwrap();
    let breaks = breaking_changes(&released, &current);
    assert!(
        breaks.is_empty(),
        "the API is no longer compatible with the released spec {file}:\n  - {}\n\
         Restore what clients rely on, or release a new major version (copy the new spec to \
         openapi/released/).",
        breaks.join("\n  - ")
    );
}

// ---------- the guard's own tests, on small hand-written specs ----------

mod comparison {
    use super::breaking_changes;
    use serde_json::{json, Value};

    /// A spec with one `POST /things/{id}` operation and a `Thing` schema.
    fn base() -> Value {
        json!({
            "openapi": "3.0.0",
            "paths": {
                "/things/{id}": {
                    "post": {
                        "operationId": "updateThing",
                        "parameters": [
                            {"in": "path", "name": "id", "required": true,
                             "schema": {"type": "integer", "format": "uint64"}},
                            {"in": "query", "name": "dry_run", "required": false,
                             "schema": {"type": "boolean"}}
                        ],
                        "requestBody": {
                            "required": false,
                            "content": {"application/json; charset=utf-8": {
                                "schema": {"$ref": "#/components/schemas/ThingUpdate"}}}
                        },
                        "responses": {
                            "200": {"description": "", "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Thing"}}}},
                            "404": {"description": "", "content": {"application/json": {
                                "schema": {"type": "object"}}}}
                        }
                    }
                }
            },
            "components": {"schemas": {
                "ThingUpdate": {"type": "object", "properties": {
                    "name": {"type": "string"},
                    "size": {"type": "integer", "format": "uint32"}}},
                "Thing": {"type": "object", "required": ["id", "state"], "properties": {
                    "id": {"type": "integer", "format": "uint64"},
                    "state": {"$ref": "#/components/schemas/State"},
                    "note": {"type": "string"},
                    "parts": {"type": "array", "items": {"$ref": "#/components/schemas/Thing"}},
                    "scores": {"type": "object", "additionalProperties": {"type": "number"}}}},
                "State": {"type": "string", "enum": ["new", "done"]}
            }}
        })
    }

    /// `base()` changed by `edit`, compared against `base()`.
    fn breaks_after(edit: impl FnOnce(&mut Value)) -> Vec<String> {
        let mut new = base();
        edit(&mut new);
        breaking_changes(&base(), &new)
    }

    fn assert_one_break(breaks: &[String], expected: &str) {
        assert!(
            breaks.len() == 1 && breaks[0].contains(expected),
            "expected one break containing {expected:?}, got {breaks:#?}"
        );
    }

    const OP: &str = "/paths/~1things~1{id}/post";

    #[test]
    fn identical_specs_are_compatible() {
        assert_eq!(breaks_after(|_| {}), Vec::<String>::new());
    }

    #[test]
    fn additions_are_compatible() {
        let breaks = breaks_after(|spec| {
            spec["paths"]["/other"] = json!({"get": {"operationId": "other", "responses": {}}});
            spec["paths"]["/things/{id}"]["get"] =
                json!({"operationId": "getThing", "responses": {}});
            let op = spec.pointer_mut(OP).unwrap();
            op["parameters"].as_array_mut().unwrap().push(
                json!({"in": "query", "name": "verbose", "required": false, "schema": {"type": "boolean"}}),
            );
            op["responses"]["409"] = json!({"description": "", "content": {}});
            op["requestBody"]["content"]["application/octet-stream"] =
                json!({"schema": {"type": "string", "format": "binary"}});
            let schemas = &mut spec["components"]["schemas"];
            schemas["Thing"]["properties"]["extra"] = json!({"type": "string"});
            schemas["ThingUpdate"]["properties"]["colour"] = json!({"type": "string"});
            schemas["State"]["enum"]
                .as_array_mut()
                .unwrap()
                .push(json!("archived"));
            // A response property that becomes always present is a promise kept.
            schemas["Thing"]["required"]
                .as_array_mut()
                .unwrap()
                .push(json!("note"));
        });
        assert_eq!(breaks, Vec::<String>::new());
    }

    #[test]
    fn removed_path_and_operation_are_breaking() {
        let breaks = breaks_after(|spec| {
            spec["paths"]
                .as_object_mut()
                .unwrap()
                .remove("/things/{id}");
        });
        assert_one_break(&breaks, "path /things/{id} was removed");
        let breaks = breaks_after(|spec| {
            spec["paths"]["/things/{id}"] = json!({"get": {"responses": {}}});
        });
        assert_one_break(&breaks, "POST /things/{id}: operation was removed");
    }

    #[test]
    fn renamed_operation_id_is_breaking() {
        let breaks = breaks_after(|spec| {
            spec.pointer_mut(OP).unwrap()["operationId"] = json!("putThing");
        });
        assert_one_break(
            &breaks,
            "operationId changed from `updateThing` to `putThing`",
        );
    }

    #[test]
    fn removed_response_property_status_or_media_type_is_breaking() {
        let breaks = breaks_after(|spec| {
            let properties = &mut spec["components"]["schemas"]["Thing"]["properties"];
            properties.as_object_mut().unwrap().remove("note");
        });
        assert_one_break(
            &breaks,
            "POST /things/{id}: response 200 (application/json) → `note` was removed",
        );
        let breaks = breaks_after(|spec| {
            let responses = &mut spec.pointer_mut(OP).unwrap()["responses"];
            responses.as_object_mut().unwrap().remove("404");
        });
        assert_one_break(&breaks, "response 404 was removed");
        let breaks = breaks_after(|spec| {
            let content = &mut spec.pointer_mut(OP).unwrap()["requestBody"]["content"];
            let media = content
                .as_object_mut()
                .unwrap()
                .remove("application/json; charset=utf-8")
                .unwrap();
            content["text/plain"] = media;
        });
        assert_one_break(
            &breaks,
            "request body: media type `application/json; charset=utf-8` was removed",
        );
    }

    #[test]
    fn response_property_no_longer_required_is_breaking() {
        let breaks = breaks_after(|spec| {
            spec["components"]["schemas"]["Thing"]["required"] = json!(["id"]);
        });
        assert_one_break(&breaks, "→ `state` is no longer always present");
    }

    #[test]
    fn changed_type_or_format_is_breaking() {
        let breaks = breaks_after(|spec| {
            spec["components"]["schemas"]["Thing"]["properties"]["id"] = json!({"type": "string"});
        });
        assert_one_break(
            &breaks,
            "→ `id`: type changed from `integer` (uint64) to `string`",
        );
        let breaks = breaks_after(|spec| {
            spec.pointer_mut(OP).unwrap()["parameters"][0]["schema"]["format"] = json!("uint32");
        });
        assert_one_break(
            &breaks,
            "path parameter `id`: type changed from `integer` (uint64) to `integer` (uint32)",
        );
        let breaks = breaks_after(|spec| {
            let size = &mut spec["components"]["schemas"]["ThingUpdate"]["properties"]["size"];
            *size = json!({"type": "number", "format": "double"});
        });
        assert_one_break(
            &breaks,
            "request body (application/json) → `size`: type changed",
        );
        let breaks = breaks_after(|spec| {
            let scores = &mut spec["components"]["schemas"]["Thing"]["properties"]["scores"];
            scores["additionalProperties"] = json!({"type": "string"});
        });
        assert_one_break(&breaks, "→ `scores`{}: type changed");
    }

    #[test]
    fn newly_required_inputs_are_breaking() {
        let breaks = breaks_after(|spec| {
            spec.pointer_mut(OP).unwrap()["parameters"][1]["required"] = json!(true);
        });
        assert_one_break(&breaks, "query parameter `dry_run` became required");
        let breaks = breaks_after(|spec| {
            spec.pointer_mut(OP).unwrap()["parameters"]
                .as_array_mut()
                .unwrap()
                .push(json!({"in": "header", "name": "X-Key", "required": true, "schema": {"type": "string"}}));
        });
        assert_one_break(&breaks, "new required header parameter `X-Key`");
        let breaks = breaks_after(|spec| {
            spec.pointer_mut(OP).unwrap()["requestBody"]["required"] = json!(true);
        });
        assert_one_break(&breaks, "the request body became required");
        let breaks = breaks_after(|spec| {
            spec["components"]["schemas"]["ThingUpdate"]["required"] = json!(["name"]);
        });
        assert_one_break(&breaks, "→ `name` became required");
        let breaks = breaks_after(|spec| {
            let update = &mut spec["components"]["schemas"]["ThingUpdate"];
            update["properties"]["owner"] = json!({"type": "string"});
            update["required"] = json!(["owner"]);
        });
        assert_one_break(
            &breaks,
            "request body (application/json): new required field `owner`",
        );
        let breaks = breaks_after(|spec| {
            spec["paths"]["/things/{id}"]["put"] = json!({"responses": {}});
            spec["paths"]["/things/{id}"]["delete"] =
                json!({"responses": {}, "requestBody": {"required": true, "content": {}}});
        });
        assert_eq!(
            breaks,
            Vec::<String>::new(),
            "new operations may require anything"
        );
        let breaks = breaks_after(|spec| {
            spec.pointer_mut(OP)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove("requestBody");
        });
        assert_one_break(&breaks, "the request body was removed");
    }

    #[test]
    fn removed_enum_value_is_breaking() {
        let breaks = breaks_after(|spec| {
            spec["components"]["schemas"]["State"]["enum"] = json!(["new"]);
        });
        assert_one_break(&breaks, "→ `state`: enum value \"done\" was removed");
    }

    #[test]
    fn recursive_schemas_end_and_shared_schemas_report_once() {
        // `Thing.parts` holds Things and `Thing` is reached again through it: one report, no loop.
        let breaks = breaks_after(|spec| {
            spec["components"]["schemas"]["Thing"]["properties"]["note"] =
                json!({"type": "integer"});
        });
        assert_one_break(
            &breaks,
            "response 200 (application/json) → `note`: type changed",
        );
    }

    #[test]
    fn described_references_are_followed() {
        // `allOf: [{$ref}, {description}]` is how a reference with its own description is written;
        // adding or dropping the description changes nothing for clients.
        let described =
            json!({"allOf": [{"$ref": "#/components/schemas/State"}, {"description": "d"}]});
        let breaks = breaks_after(|spec| {
            spec["components"]["schemas"]["Thing"]["properties"]["state"] = described.clone();
        });
        assert_eq!(breaks, Vec::<String>::new());
        let breaks = breaks_after(|spec| {
            spec["components"]["schemas"]["Thing"]["properties"]["state"] = described;
            spec["components"]["schemas"]["State"]["enum"] = json!(["new"]);
        });
        assert_one_break(&breaks, "→ `state`: enum value \"done\" was removed");
    }

    #[test]
    fn parameter_removal_is_breaking() {
        let breaks = breaks_after(|spec| {
            spec.pointer_mut(OP).unwrap()["parameters"]
                .as_array_mut()
                .unwrap()
                .remove(1);
        });
        assert_one_break(&breaks, "query parameter `dry_run` was removed");
    }
}
