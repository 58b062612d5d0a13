//! The API description (OpenAPI 3.1), written out here rather than derived: the wire types
//! live in four crates and the schemas below name their fields. A test requests every path
//! listed here and fails if the router does not know it.

use serde_json::{Map, Value, json};

/// (method, path, tag, summary, request body fields)
pub const ENDPOINTS: &[(&str, &str, &str, &str, &str)] = &[
    ("get", "/v1/models", "openai", "The served model, with its context length (max_model_len).", ""),
    (
        "post",
        "/v1/completions",
        "openai",
        "Continue a text prompt. OpenAI's fields plus top_k, min_p, repetition_penalty, min_tokens; stream for server-sent events; speculative (auto, the default, lookup or off: guessed tokens checked in one pass, the same text either way); banned_strings (TabbyAPI's name) and banned_regex: phrases and patterns that never appear, case-insensitive, taken back and resampled where they begin (finish_reason content_filter when no way around them is left).",
        "model, prompt, max_tokens, n, stop, stream, stream_options, temperature, top_p, seed, logprobs, top_k, min_p, repetition_penalty, presence_penalty, frequency_penalty, min_tokens, response_format, speculative, banned_strings, banned_regex",
    ),
    (
        "post",
        "/v1/chat/completions",
        "openai",
        "Answer chat messages through the model's chat template.",
        "model, messages[{role, content}], max_tokens | max_completion_tokens, n, stop, stream, stream_options, temperature, top_p, seed, logprobs, top_logprobs, top_k, min_p, repetition_penalty, response_format, continue_final_message, speculative, banned_strings, banned_regex",
    ),
    ("get", "/api/tools", "tools", "Every writing tool with its options and their values.", ""),
    (
        "post",
        "/api/tools/{name}",
        "tools",
        "Run a tool. With stream: events {type: progress|text|finished|result|error}. With project: the project's memory, note and bible apply and each candidate is filed in the generation tree. Answers come in the text's language (or `language`); lists give `count` items (carried on when the model stops short); each candidate's `flags` say what is still wrong with it (commentary, wrong_language, short_list, unusable_field, ignores_input), and flagged ones come last. `speculative` (auto, lookup, off) as on /v1. `bans` {defaults, phrases, regex, allow} stacks over the project's banned phrases and the config file's; the built-in list applies unless a level sets defaults false, less phrases the prompt itself uses. `alternatives` (up to 20) gives each candidate `tokens`: its answer token by token, each with its likeliest alternatives before (`top`) and after (`sampled_top`) the samplers, filed with the candidate. `answer_start` makes the answer start with that text (a branch from an alternative: the old answer up to a token, then the one chosen; send `parent` to file it under the old one). In a project with a voice profile, prose tools (continue, draft, expand, describe, tighten) rank their candidates by the writer's voice with the model's likelihood beside it; each candidate's `voice` has its score, fit and reason; `voice: false` keeps the model's order.",
        "text, options{}, n, seed, max_tokens, temperature, language, count, frame, speculative, bans, alternatives, answer_start, stream, project, document, parent, before, chapter, memory, note, voice",
    ),
    ("post", "/api/proofread", "tools", "Spelling and grammar findings by rule, with char, byte and UTF-16 spans and replacements.", "text, dialect"),
    ("get", "/api/projects", "projects", "All projects.", ""),
    ("post", "/api/projects", "projects", "Create a project.", "name"),
    ("get", "/api/projects/{project}", "projects", "A project, its documents and the AI-assisted share of each.", ""),
    ("put", "/api/projects/{project}/context", "projects", "Set the project's memory and author's note.", "memory, authors_note, depth"),
    ("get", "/api/projects/{project}/bans", "projects", "The project's banned phrases, the config file's beneath them, and the built-in list.", ""),
    (
        "put",
        "/api/projects/{project}/bans",
        "projects",
        "Set the project's banned phrases: defaults (the built-in list on or off; unset inherits), phrases, regex, allow (built-in phrases allowed after all). A pattern that does not compile is a 400.",
        "defaults, phrases, regex, allow",
    ),
    (
        "get",
        "/api/projects/{project}/voice",
        "projects",
        "The writer's voice profile: when it was built, from how much of their own text, its habits, and its description in plain words in the writer's language. A 404 until one is built.",
        "",
    ),
    (
        "post",
        "/api/projects/{project}/voice",
        "projects",
        "Build (or rebuild) the voice profile from the manuscript's text the authorship ledger marks as the writer's own; model text is left out. Too little writing of their own is a 409 that says how much is needed. Prose tools then rank their candidates by it (each candidate's `voice` gives its score and reason; `voice: false` in a tool request keeps the model's order).",
        "",
    ),
    ("delete", "/api/projects/{project}/voice", "projects", "Forget the voice profile: candidates keep the model's order.", ""),
    (
        "get",
        "/api/projects/{project}/learning",
        "projects",
        "Learning from the writer's choices: `pairs` (an accepted candidate over each shown beside it, and the writer's edit over the model's words; `edits` of them edits), `plan` {needed, steps, held_out, seconds} for training on them, `training` {state: preparing|running|done|failed|stopped, step, steps, loss, seconds_left, report, error} and `adapter` {in_use, report, why_not}. `available: false` when the server serves a remote model and cannot train.",
        "",
    ),
    (
        "post",
        "/api/projects/{project}/learning",
        "projects",
        "Train a feedback adapter (DPO) on the project's choices in the background: 202, then poll GET for progress. Fewer pairs than `plan.needed`, or a training already running, is a 409. Once it is done the project's tool runs go through it (their `model` ends in `+feedback`); the adapter in use before stays in use until the new one is complete. `report` gives, of the held-out pairs, on how many the model preferred the writer's choice before and after.",
        "",
    ),
    (
        "delete",
        "/api/projects/{project}/learning",
        "projects",
        "Stop a training under way and forget the project's feedback adapter (its file is deleted; the choices stay, so it can be trained again).",
        "",
    ),
    ("post", "/api/projects/{project}/documents", "documents", "Add a document.", "title, text"),
    ("get", "/api/projects/{project}/documents/{doc}", "documents", "A document at its current revision.", ""),
    ("post", "/api/projects/{project}/documents/{doc}/revisions", "documents", "Save the document's text as a new revision (no-op when unchanged).", "text, origin (typed|pasted)"),
    ("get", "/api/projects/{project}/documents/{doc}/revisions", "documents", "Every revision of the document, every branch.", ""),
    ("get", "/api/projects/{project}/documents/{doc}/revisions/{rev}", "documents", "One revision with its text and authorship share.", ""),
    ("post", "/api/projects/{project}/documents/{doc}/undo", "documents", "Step back one revision (typing and accepted suggestions alike).", ""),
    ("post", "/api/projects/{project}/documents/{doc}/redo", "documents", "Step forward again.", ""),
    ("post", "/api/projects/{project}/documents/{doc}/restore", "documents", "Bring back an earlier revision's text as a new revision.", "revision"),
    ("post", "/api/projects/{project}/documents/{doc}/accept", "documents", "Accept a generation: the document becomes text, recorded as model-written where it changed.", "generation, text"),
    (
        "get",
        "/api/projects/{project}/generations",
        "generations",
        "The generation tree: alternatives under ?parent=ID, or every node with ?tree=true (each names its parent_id), for ?document=ID. Tokens are left out; has_tokens says whether a node has them.",
        "",
    ),
    (
        "get",
        "/api/projects/{project}/generations/{id}",
        "generations",
        "One generation, with its tokens and each token's alternatives (before and after the samplers) when the run asked for them.",
        "",
    ),
    ("post", "/api/projects/{project}/generations/{id}/status", "generations", "Record what the writer did with a generation.", "status (accepted|edited|rejected), detail"),
    ("get", "/api/projects/{project}/bible", "bible", "The story bible.", ""),
    (
        "post",
        "/api/projects/{project}/bible",
        "bible",
        "Add or update an entry (kind + name identify it). `rules` sets its lorebook rules (secondary, logic, order, position, sticky, cooldown, probability, from_chapter, progressions, ...); without it an existing entry keeps its own.",
        "kind, name, keys[], body, rules{}",
    ),
    ("get", "/api/projects/{project}/lore/export", "bible", "The lorebook as SillyTavern world info.", ""),
    (
        "post",
        "/api/projects/{project}/lore/import",
        "bible",
        "Import SillyTavern or KoboldAI world info, a character book, or a list of entries; entries of the same kind and name are replaced.",
        "entries",
    ),
    ("delete", "/api/projects/{project}/bible/{id}", "bible", "Remove an entry.", ""),
    ("get", "/api/projects/{project}/book", "book", "The story pipeline: stages, chapters with their beats and summaries, locks, done, and what is stale (and why).", ""),
    ("get", "/api/projects/{project}/book/{stage}", "book", "A stage's text and parts (braindump, synopsis, outline; beats, summary or chapter with ?chapter=N).", ""),
    (
        "put",
        "/api/projects/{project}/book/{stage}",
        "book",
        "Write a stage by hand (a new revision; beats and summaries need `chapter`, and chapter N is created from its outline entry when it is the next one).",
        "text, chapter",
    ),
    (
        "put",
        "/api/projects/{project}/book/{stage}/locks",
        "book",
        "Set a stage's locks: `whole`, or 1-based `parts` of the outline or a chapter's beats; regenerating keeps them.",
        "chapter, whole, parts[]",
    ),
    (
        "post",
        "/api/projects/{project}/book/{stage}/generate",
        "book",
        "Generate a stage from the one above it (synopsis, outline, beats, summary) and file it as a new revision, locked parts kept; 409 when it is locked whole.",
        "chapter, count, seed, temperature",
    ),
    ("post", "/api/projects/{project}/chapters/{n}/done", "book", "Mark chapter N done (or not); it is summarized unless its summary is up to date.", "done, summarize, seed"),
    (
        "post",
        "/api/projects/{project}/chapters/{n}/draft",
        "book",
        "Draft chapter N from its beats, one `draft` run a beat (about `words_per_beat` words each, default 250), with the synopsis, the chapter's outline entry, the earlier chapters' summaries, the end of the chapter before and the lore that fires; filed as the model's text. A chapter that already has words is a 409 unless `replace` (the old text stays in its history); no beats is a 400; a model that wrote nothing is a 502 and changes nothing. Returns the document, its text, each beat's words and the book's status.",
        "words_per_beat, replace, seed, temperature, frame",
    ),
    ("post", "/api/projects/{project}/documents/{doc}/rename", "book", "Rename a document; titles stay unique.", "title"),
    ("post", "/api/projects/{project}/documents/{doc}/move", "book", "Move a document to a 1-based place in the manuscript.", "to"),
    ("get", "/api/projects/{project}/export", "projects", "Download the manuscript: ?format=md|txt|epub|docx&name=FILE (a plain file name).", ""),
    ("get", "/api/projects/{project}/report", "projects", "The authorship report: writer, model and model-edited characters per document.", ""),
    ("get", "/health", "server", "Liveness, the model, the queue.", ""),
    ("get", "/metrics", "server", "Prometheus metrics: queue depth, requests, rejections, cancellations, tokens, tokens per second.", ""),
];

pub fn spec() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, tag, summary, body) in ENDPOINTS {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": if ["doc", "rev", "id"].contains(&name) { "integer" } else { "string" }}}))
            .collect();
        let mut op = json!({
            "tags": [tag],
            "summary": summary,
            "parameters": params,
            "responses": {
                "200": {"description": "OK (JSON; text/event-stream when streaming)"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
                "413": {"$ref": "#/components/responses/Error"},
                "429": {"$ref": "#/components/responses/Error"},
            },
        });
        if !body.is_empty() {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object", "description": format!("Fields: {body}")}}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "inkling", "version": env!("CARGO_PKG_VERSION"), "description": "A local writing partner: OpenAI-compatible completions, the writing tools, and projects that keep every revision."},
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "description": "Required when the server was started with an API key."}},
            "responses": {"Error": {"description": "OpenAI's error shape", "content": {"application/json": {"schema": {
                "type": "object",
                "properties": {"error": {"type": "object", "properties": {"message": {"type": "string"}, "type": {"type": "string"}, "code": {"type": "integer"}}}}
            }}}}},
        },
        "security": [{"bearer": []}],
    })
}
