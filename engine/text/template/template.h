/* template.h: chat templates, rendered as Hugging Face transformers renders
 * them with Jinja2 (an ImmutableSandboxedEnvironment with trim_blocks and
 * lstrip_blocks, raise_exception, strftime_now, tojson as json.dumps with
 * ensure_ascii=False, the {% generation %} tag and loop controls).
 *
 * Parse once, render any number of times:
 *
 *   struct tmpl *t;
 *   if (tmpl_parse(src, len, NULL, &t, &err)) ...          err: "line 3: ..."
 *   if (tmpl_render_json(t, context, &out, &n, &err)) ...  context: a JSON object
 *   free(out); tmpl_free(t);
 *
 * A template comes from a downloaded file, so nothing it does may crash, hang
 * or exhaust memory: the limits below end any render with an error, within a
 * second or two of CPU. A template that calls raise_exception(MSG) fails with
 * exactly MSG as the message (a NUL byte in it written \x00). */
#ifndef VKLLM_TEMPLATE_H
#define VKLLM_TEMPLATE_H

#include "vkllm.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct tmpl_limits {
    uint64_t max_steps; /* statements and expressions evaluated per render */
    size_t max_output;  /* bytes of output */
    size_t max_memory;  /* bytes of arena memory per parse and per render */
    int max_depth;      /* nesting of the syntax and of macro calls */
};

/* The defaults: 10 million steps (and 10 units of work a step: tmpl.h), 16 MiB
 * of output, 256 MiB of memory, depth 200. */
struct tmpl_limits tmpl_default_limits(void);

struct tmpl;

/* Parses LEN bytes of SRC (any bytes; not NUL-terminated). LIM NULL: the
 * defaults, kept for the renders. VKLLM_E_FORMAT for a syntax error. */
int tmpl_parse(const char *src, size_t len, const struct tmpl_limits *lim, struct tmpl **out,
               struct vkllm_error *err);
void tmpl_free(struct tmpl *t);

/* Renders T with the variables of CONTEXT (a JSON object; NULL: none) into a
 * malloc'd, NUL-terminated *OUT of *OUT_LEN bytes (the text may contain NULs).
 * On failure *OUT is NULL and the status is VKLLM_E_INVALID (an error of the
 * template, a raise_exception included, or a limit) or VKLLM_E_NOMEM. */
int tmpl_render_json(const struct tmpl *t, const json_t *context, char **out, size_t *out_len,
                     struct vkllm_error *err);
/* The same, stopped when STOP(USER) returns true (see vkllm_template_render_stop). */
int tmpl_render_json_stop(const struct tmpl *t, const json_t *context, bool (*stop)(void *user),
                          void *user, char **out, size_t *out_len, struct vkllm_error *err);

/* Refuses JSON TEXT (LEN bytes) that holds more than TMPL_JSON_MAX_VALUES
 * values (VKLLM_E_FORMAT, "NAME: more than N JSON values ..."), before Jansson
 * builds its tree: that costs about 300 bytes a value, so a 256 MiB file of
 * "[]," would take gigabytes before the render's memory limit could act.
 * Counts brackets and commas outside strings in one pass (an upper bound on
 * the values); the syntax is left to Jansson. A message is three values (the
 * object, role, content) and at least a token of the prompt, so even a
 * 256K-token context of one-token messages stays under a million; a million
 * values (333,000 messages) render in 2 s and 450 MB at most (measured). */
#define TMPL_JSON_MAX_VALUES 1000000
int tmpl_json_check(const char *text, size_t len, const char *name, struct vkllm_error *err);

#endif
