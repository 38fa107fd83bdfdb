/* test_template.c: the chat-template interpreter.
 *
 *   test_template                 every case of data/templates/cases.json (real
 *                                 templates, Jinja2's renders) byte for byte, the
 *                                 two that must raise included; then the semantics
 *                                 that are easy to get wrong, each pinned to what
 *                                 Jinja2 3.1 prints; then the limits
 *   test_template --write-gguf F  writes a small GGUF with a chat template and a
 *                                 vocabulary for test_template_cli.sh
 *   test_template --write-cases D writes each case's context to D/NAME.caseN.json
 *                                 and lists "TEMPLATE CONTEXT EXPECTED output|error"
 *                                 on stdout, for test_template_cli.sh
 */
#include "testhelp.h"
#include "text/template/template.h"
#include "vkllm.h"

#include <jansson.h>
#include <string.h>
#include <time.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) buf[n] = 0;
    *len = (size_t)n;
    return buf;
}

/* ---- the reference cases */

static void test_cases(void)
{
    json_error_t jerr;
    json_t *cases = json_load_file(VKLLM_TEST_DATA "/templates/cases.json", 0, &jerr);
    REQUIRE(cases, "cases.json: %s", jerr.text);
    json_t *templates = json_object_get(cases, "templates");
    size_t ti, n_cases = 0, passed = 0;
    json_t *t;
    json_array_foreach(templates, ti, t)
    {
        char path[1024];
        size_t len;
        snprintf(path, sizeof path, VKLLM_TEST_DATA "/templates/%s",
                 json_string_value(json_object_get(t, "template_file")));
        char *src = slurp(path, &len);
        REQUIRE(src, "%s", path);
        size_t ci;
        json_t *c;
        json_array_foreach(json_object_get(t, "cases"), ci, c)
        {
            n_cases++;
            char *ctx = json_dumps(json_object_get(c, "context"), JSON_COMPACT);
            snprintf(path, sizeof path, VKLLM_TEST_DATA "/templates/%s",
                     json_string_value(json_object_get(c, "expected_file")));
            size_t exp_len;
            char *expected = slurp(path, &exp_len);
            REQUIRE(expected, "%s", path);
            char *out = NULL;
            size_t out_len = 0;
            struct vkllm_error err = {0};
            int rc = vkllm_template_render(src, len, ctx, &out, &out_len, &err);
            const char *name = json_string_value(json_object_get(t, "name"));
            const char *id = json_string_value(json_object_get(c, "id"));
            if (!strcmp(json_string_value(json_object_get(c, "expect")), "error")) {
                CHECK(rc != VKLLM_OK && !strcmp(err.msg, expected),
                      "%s %s: expected error '%s', got %d '%s'", name, id, expected, rc, err.msg);
                passed += rc != VKLLM_OK && !strcmp(err.msg, expected);
            } else {
                bool same = rc == VKLLM_OK && out_len == exp_len && !memcmp(out, expected, exp_len);
                CHECK(same, "%s %s: %s\n--- expected\n%s\n--- got\n%s", name, id,
                      rc ? err.msg : "output differs", expected, out ? out : "");
                passed += same;
            }
            free(out);
            free(expected);
            free(ctx);
        }
        free(src);
    }
    fprintf(stderr, "templates: %zu of %zu reference cases match\n", passed, n_cases);
    CHECK(n_cases == 64, "expected 64 cases, found %zu", n_cases);
    json_decref(cases);
}

/* ---- semantics: each expectation is what Jinja2 3.1.6 renders with the
 * transformers environment (trim_blocks, lstrip_blocks, the tojson override) */

static const char *ctx_json =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"  Sys  \"},"
    " {\"role\": \"user\", \"content\": \"Hi \\u00e9 \\u4e16 \\ud83d\\udc4b\\n\"},"
    " {\"role\": \"assistant\", \"content\": \"ok\"}],"
    " \"x\": {\"b\": 1, \"a\": 2.5, \"c\": [1, 2, 3]}, \"s\": \"Hello World\", \"l\": [3, 1, 2],"
    " \"u\": \"\\u00e9\\u2028\\u0001\\\"\\\\\", \"none\": null}";

static void expect_render(const char *tmpl, const char *expected, int line)
{
    char *out = NULL;
    struct vkllm_error err = {0};
    int rc = vkllm_template_render(tmpl, strlen(tmpl), ctx_json, &out, NULL, &err);
    CHECK(rc == VKLLM_OK && !strcmp(out, expected), "line %d: %s\n  expected [%s]\n  got      [%s]",
          line, tmpl, expected, rc ? err.msg : out);
    free(out);
}

static void expect_error(const char *tmpl, const char *message, int line)
{
    char *out = NULL;
    struct vkllm_error err = {0};
    int rc = vkllm_template_render(tmpl, strlen(tmpl), ctx_json, &out, NULL, &err);
    CHECK(rc != VKLLM_OK && out == NULL && strstr(err.msg, message),
          "line %d: %s\n  expected an error with [%s]\n  got %d [%s]", line, tmpl, message, rc,
          rc ? err.msg : out);
    free(out);
}

#define RENDERS(t, e) expect_render(t, e, __LINE__)
#define FAILS(t, m)   expect_error(t, m, __LINE__)

static void test_whitespace(void)
{
    /* trim_blocks drops the newline after %} and #}, lstrip_blocks the indent before {% */
    RENDERS("  {% if true %}\n    yes\n  {% endif %}\n  {{ 'v' }}\n", "    yes\n  v");
    /* {%+ keeps the indent; }} keeps its newline */
    RENDERS("  {%+ if true %}x{% endif %}\n{{ 1 }}\nz", "  x1\nz");
    /* - strips every kind of whitespace on its side, newlines included */
    RENDERS("a  {%- if true -%}  b  {%- endif -%}  c\n{{- 'd' -}}\n  e", "abcde");
    RENDERS("{# comment #}\nafter\n  {#- c -#}  x", "afterx");
    /* one trailing newline of the source is dropped, not two; \r\n becomes \n */
    RENDERS("a\r\nb\n\n", "a\nb\n");
    RENDERS("{% raw %}{{ x }}{% endraw %}|{%- raw -%}  y  {%- endraw -%}|", "{{ x }}|y|");
    RENDERS(
        "{{ 'x' }}\n{%- if true %}\n  A\n{%- endif %}\nB{% if false %}\n{% else %}\nC\n{% endif %}",
        "x  ABC\n");
    /* a dict literal may hold }} inside its braces */
    RENDERS("{{ {'a': {'b': 1}}['a']['b'] }}", "1");
}

static void test_loops(void)
{
    RENDERS(
        "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
        "{{ loop.length }}{{ loop.revindex }}[{{ loop.previtem is defined }}|"
        "{{ (loop.nextitem or {}).role }}]{% endfor %}",
        "10TrueFalse33[False|user]21FalseFalse32[True|assistant]32FalseTrue31[True|]");
    /* the filter runs first, so loop.length counts what is kept; else runs on no items */
    RENDERS("{% for m in messages if m.role != 'system' %}{{ loop.index }}/{{ loop.length }} "
            "{% endfor %}{% for a in [] %}x{% else %}empty{% endfor %}",
            "1/2 2/2 empty");
    /* a set inside a loop lasts one iteration: why templates use namespace() */
    RENDERS(
        "{% set x = 0 %}{% for i in range(3) %}{{ x }}{% set x = i %}{{ x }}{% endfor %}{{ x }}",
        "0001020");
    RENDERS("{% set ns = namespace(a=1) %}{% for i in range(4) %}{% set ns.a = ns.a + i %}"
            "{% endfor %}{{ ns.a }}",
            "7");
    RENDERS("{% for k, v in x.items() %}{{ k }}={{ v }};{% endfor %}", "b=1;a=2.5;c=[1, 2, 3];");
    RENDERS("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}"
            "{% break %}{% endif %}{{ i }}{% endfor %}",
            "0134");
    RENDERS("{% for c in 'ab' %}{{ loop.cycle('x', 'y') }}{{ c }}{% endfor %}", "xayb");
    /* set and filter blocks, macros and generation have their own scope; if does not
     * (a set inside a filter block once leaked: found by comparing with Jinja2) */
    RENDERS("{% set y = 1 %}{% set b %}{% set y = 2 %}{{ y }}{% endset %}{{ b }}{{ y }}"
            "{% filter upper %}{% set y = 3 %}{{ y }}{% endfilter %}{{ y }}",
            "2131");
    RENDERS("{% macro m() %}{% set q = 1 %}{{ q }}{% endmacro %}{{ m() }}[{{ q }}]"
            "{% if true %}{% set v = 5 %}{% endif %}{{ v }}"
            "{% generation %}{% set g = 1 %}{% endgeneration %}[{{ g }}]",
            "1[]5[]");
}

static void test_values(void)
{
    RENDERS(
        "{{ none }}|{{ true }}|{{ [1, 'a', none] }}|{{ (1,) }}|{{ {'k': 1.0} }}|{{ x.items() }}",
        "None|True|[1, 'a', None]|(1,)|{'k': 1.0}|dict_items([('b', 1), ('a', 2.5), ('c', [1, "
        "2, 3])])");
    RENDERS("{{ [\"it's\", 'say \"hi\"', u] }}", "[\"it's\", 'say \"hi\"', 'é\\u2028\\x01\"\\\\']");
    RENDERS(
        "{{ 1e16 }} {{ 1e15 }} {{ 0.0001 }} {{ 0.00001 }} {{ 0.1 + 0.2 }} {{ 1 / 3 }} {{ -0.0 }}",
        "1e+16 1000000000000000.0 0.0001 1e-05 0.30000000000000004 0.3333333333333333 -0.0");
    RENDERS("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** -1 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }} "
            "{{ 10 / 4 }} {{ 2 ** 3 ** 2 }}",
            "3 -4 2 0.5 3.0 0.5 2.5 64");
    RENDERS("{{ 'abc'[::-1] }}|{{ l[-1:0:-1] }}|{{ 'héllo'[1:3] }}|{{ l[::2] }}|{{ s[-5:] }}|{{ "
            "l[5:] }}",
            "cba|[2, 1]|él|[3, 2]|World|[]");
    RENDERS("{{ '%s-%d-%05.2f' % ('a', 3, 2.5) }}|{{ '{} and {}'.format(1, 'b') }}",
            "a-3-02.50|1 and b");
    /* Jinja2's title filter starts words after [-\\s({[<] only, unlike str.title() */
    RENDERS("{{ \"it's (o'neil) ß-x\"|title }}|{{ \"it's\".title() }}", "It's (O'neil) SS-X|It'S");
    /* Python's full case mappings: one character to two or three, the final
     * sigma of a word, case folding (they were one character for one) */
    RENDERS(
        "{{ 'straße'|upper }}|{{ 'İ'|lower }}|{{ 'ΟΔΟΣ ΟΔΟΣ.'|lower }}|{{ 'ΌΣΟΣ\\'s'|lower }}|{{ "
        "'Straße'.casefold() }}|{{ 'ﬁnal'|capitalize }}|{{ 'ǆ'.title() }}|{{ 'ᾳ'.swapcase() }}",
        "STRASSE|i̇|οδος οδος.|όσοσ's|strasse|Final|ǅ|ΑΙ");
    /* overlong forms and code points past U+10FFFF stay stray bytes: decoded,
     * "\xc0\xbc" became a real '<' and "\xc0\x80" a NUL */
    RENDERS("{{ 'x\xc0\xbcy'|upper }}|{{ 'x\xc0\x80y'|upper }}|{{ 'x\xf4\x90\x80\x80y'|upper }}|{{ "
            "'\xc0\xbc'|length }}",
            "X\xc0\xbcY|X\xc0\x80Y|X\xf4\x90\x80\x80Y|2");
    RENDERS("{{ 5|round }} {{ 2.5|round }} {{ 2.675|round(2) }} {{ 7 is odd }} {{ 7.0 is odd }}",
            "5 2.0 2.67 True True");
    RENDERS("{{ 1 == 1.0 }}{{ true == 1 }}{{ '1' == 1 }}{{ (1, 2) == [1, 2] }}{{ 'b' in 'abc' }}"
            "{{ 2 not in l }}",
            "TrueTrueFalseFalseTrueFalse");
}

/* The round filter with a negative precision kept the number as it was
 * (1234.5|round(-2) was 1234.0, and an int became a float): Jinja2 calls
 * Python's round(value, precision), exact and ties to even, which leaves an
 * int an int, and ceil/floor(value * 10**precision) / 10**precision. Ints are
 * 64-bit here, so a rounded int past them is an error (Python's grow). */
static void test_round(void)
{
    RENDERS("{{ 1234.5|round(-2) }} {{ 1234|round(-2) }} {{ 1250|round(-2) }} {{ 1350|round(-2) }} "
            "{{ -15|round(-1) }} {{ true|round(-1) }}",
            "1200.0 1200 1200 1400 -20 0");
    RENDERS("{{ 1234|round(-2, 'ceil') }} {{ 1234.5|round(-2, 'floor') }} "
            "{{ -1234.5|round(-2, 'floor') }} {{ 0.5|round(-1, 'ceil') }} "
            "{{ -12.0|round(-2, 'ceil') }} {{ 7|round(2, 'floor') }}",
            "1300.0 1200.0 -1300.0 10.0 0.0 7.0");
    /* ties by the exact value: 1149.5 is below 1150, 1250.0001 above 1250 */
    RENDERS("{{ 1149.5|round(-2) }} {{ 1250.0|round(-2) }} {{ 1250.0001|round(-2) }} "
            "{{ 5.5|round(-1) }} {{ -0.4|round(-1) }} {{ 1234.5|round(-400) }}",
            "1100.0 1200.0 1300.0 10.0 -0.0 0.0");
    /* precision was capped at 30; math.ceil gives an int, which has no -0 */
    RENDERS("{{ 1e-40|round(40) }} {{ 1.5|round(400) }} {{ 1e300|round(-299) }} "
            "{{ -0.5|round(0, 'ceil') }}",
            "1e-40 1.5 1e+300 0.0");
    FAILS("{{ 1|round(1, 'bad') }}", "method must be common, ceil or floor");
    FAILS("{{ 1.5|round(-400, 'ceil') }}", "float division by zero");
    FAILS("{{ 1.7976931348623157e308|round(-308) }}", "rounded value too large to represent");
    FAILS("{{ 9223372036854775807|round(-1) }}", "integer overflow in round");
}

/* strftime_now reads SOURCE_DATE_EPOCH as seconds; any other value is ignored
 * for the clock (builtins.c says why): "abc" was 1970. */
static void test_source_date_epoch(void)
{
    const char *saved = getenv("SOURCE_DATE_EPOCH");
    char *keep = saved ? strdup(saved) : NULL;
    setenv("SOURCE_DATE_EPOCH", "86400", 1);
    RENDERS("{{ strftime_now('%Y-%m-%d %H:%M') }}", "1970-01-02 00:00");
    /* the last second Python's datetime holds; one more is out of range, like
     * the values gmtime cannot place (these once failed the render, blaming it) */
    setenv("SOURCE_DATE_EPOCH", "253402300799", 1);
    RENDERS("{{ strftime_now('%Y-%m-%d %H:%M:%S') }}", "9999-12-31 23:59:59");
    const char *bad[] = {"abc",
                         "",
                         "-1",
                         "1e9",
                         "0x10",
                         " 5",
                         "99999999999999999999",
                         "9223372036854775807",
                         "67768036191676800",
                         "253402300800"};
    const char *tmpl = "{{ strftime_now('%s') }}"; /* glibc's %s: seconds since 1970 */
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        setenv("SOURCE_DATE_EPOCH", bad[i], 1);
        char *out = NULL;
        struct vkllm_error err = {0};
        time_t before = time(NULL);
        int rc = vkllm_template_render(tmpl, strlen(tmpl), "{}", &out, NULL, &err);
        time_t after = time(NULL), got = rc ? 0 : (time_t)strtoll(out, NULL, 10);
        CHECK(rc == VKLLM_OK && got >= before && got <= after, "SOURCE_DATE_EPOCH='%s': %s", bad[i],
              rc ? err.msg : out);
        free(out);
    }
    if (keep)
        setenv("SOURCE_DATE_EPOCH", keep, 1);
    else
        unsetenv("SOURCE_DATE_EPOCH");
    free(keep);
}

static void test_tojson(void)
{
    RENDERS("{{ x|tojson }}", "{\"b\": 1, \"a\": 2.5, \"c\": [1, 2, 3]}");
    RENDERS("{{ messages[1].content|tojson }}", "\"Hi é 世 👋\\n\"");
    RENDERS("{{ u|tojson }}", "\"é\u2028\\u0001\\\"\\\\\"");
    RENDERS("{{ x|tojson(indent=2) }}",
            "{\n  \"b\": 1,\n  \"a\": 2.5,\n  \"c\": [\n    1,\n    2,\n    3\n  ]\n}");
    RENDERS("{{ x|tojson(sort_keys=true, separators=(',', ':')) }}",
            "{\"a\":2.5,\"b\":1,\"c\":[1,2,3]}");
    RENDERS(
        "{{ {}|tojson(indent=2) }}{{ [[]]|tojson(indent=1) }}{{ 1.5e300|tojson }}{{ none|tojson }}",
        "{}[\n []\n]1.5e+300null");
    RENDERS("{{ {1: 'a', none: true}|tojson }}", "{\"1\": \"a\", \"null\": true}");
    /* indent=N indents by N spaces, as json.dumps (it was cut to 64 silently);
     * past the width limit of center and zfill it is refused as they refuse */
    RENDERS("{{ {'b': 1}|tojson(indent=70)|length }} {{ [1]|tojson(indent=0) }}|{{ "
            "[1]|tojson(indent=-1) }}",
            "80 [\n1\n]|[\n1\n]");
    FAILS("{{ x|tojson(indent=100001) }}", "width too large");
    FAILS("{{ undefined_thing|tojson }}", "not JSON serializable");
}

static void test_undefined(void)
{
    RENDERS("[{{ nope }}][{{ nope|default('d') }}][{{ nope|length }}][{{ nope is defined }}]"
            "[{{ x.zz }}][{{ none.x }}][{{ messages[9] }}][{% for a in nope %}x{% endfor %}]",
            "[][d][0][False][][][][]");
    RENDERS("{{ nope ~ 'x' }}{% if nope %}t{% else %}f{% endif %}{{ nope == nope }}", "xfTrue");
    FAILS("{{ nope.attr }}", "'nope' is undefined");
    FAILS("{{ x.zz.y }}", "'dict object' has no attribute 'zz'");
    FAILS("{{ nope + 1 }}", "'nope' is undefined");
    FAILS("{{ l.append(4) }}", "access to attribute 'append' of 'list' object is unsafe.");
    FAILS("{{ 1 + 'a' }}", "unsupported operand");
    FAILS("{{ 1 / 0 }}", "division by zero");
}

static void test_errors(void)
{
    /* raise_exception's message comes out exactly, with no location */
    char *out = NULL;
    struct vkllm_error err = {0};
    const char *t = "x{{ raise_exception('Only ' ~ 2 ~ ' roles') }}";
    CHECK(vkllm_template_render(t, strlen(t), "{}", &out, NULL, &err) == VKLLM_E_INVALID);
    CHECK(!strcmp(err.msg, "Only 2 roles"), "%s", err.msg);
    /* a NUL byte ended the message there ("a"): it is written \x00, the rest kept */
    t = "{{ raise_exception('a\\x00b') }}";
    CHECK(vkllm_template_render(t, strlen(t), "{}", &out, NULL, &err) == VKLLM_E_INVALID);
    CHECK(!strcmp(err.msg, "a\\x00b"), "%s", err.msg);
    /* so in other messages that quote the template's strings ('a' there) */
    t = "{{ {}['a\\x00b'] + 1 }}";
    CHECK(vkllm_template_render(t, strlen(t), "{}", &out, NULL, &err) == VKLLM_E_INVALID);
    CHECK(!strcmp(err.msg, "line 1: 'dict object' has no attribute 'a\\x00b'"), "%s", err.msg);
    t = "{{ '%(a\\x00b)s' % {} }}";
    CHECK(vkllm_template_render(t, strlen(t), "{}", &out, NULL, &err) == VKLLM_E_INVALID);
    CHECK(!strcmp(err.msg, "line 1: 'a\\x00b'"), "%s", err.msg);
    t = "{{ '{a\\x00b}'.format() }}";
    CHECK(vkllm_template_render(t, strlen(t), "{}", &out, NULL, &err) == VKLLM_E_INVALID);
    CHECK(!strcmp(err.msg, "line 1: 'a\\x00b'"), "%s", err.msg);
    FAILS("{% if x %}", "unexpected end of template");
    FAILS("{% frobnicate %}", "unknown tag 'frobnicate'");
    FAILS("{{ 'abc }}", "unexpected end of string");
    FAILS("{{ x | nosuchfilter }}", "No filter named 'nosuchfilter'");
    FAILS("{% break %}", "outside a loop");
    /* parsed silently, it failed in the render with "'dict' object is not callable" */
    FAILS("{% for a in [[1], 2] recursive %}{{ loop(a) }}{% endfor %}",
          "line 1: recursive loops are not supported");
    FAILS("{% for a in x if a recursive %}{% endfor %}", "recursive loops are not supported");
    FAILS("{{ (1 }}", "unexpected '}'");
    /* a syntax error is reported with its line */
    FAILS("a\nb\n{{ 1 + }}", "line 3");
    t = "{}";
    CHECK(vkllm_template_render(t, 2, "[1]", &out, NULL, &err) == VKLLM_E_FORMAT, "%s", err.msg);
    CHECK(vkllm_template_render(t, 2, "{bad", &out, NULL, &err) == VKLLM_E_FORMAT, "%s", err.msg);
}

/* A context of 30 MB of "[]," took 15 s and 2.95 GB (Jansson's tree) before
 * the render's memory limit failed, naming the template: the values are
 * counted first, commas and brackets inside strings not. */
static void test_json_values(void)
{
    struct vkllm_error err = {0};
    size_t n = TMPL_JSON_MAX_VALUES;
    char *big = malloc(2 * n + 64);
    REQUIRE(big != NULL);
    /* {"x":[0,0,...]}: N values (the object, the list, N - 2 zeros), counted as
     * 1 + commas + brackets */
    size_t len = (size_t)sprintf(big, "{\"x\":[");
    for (size_t i = 0; i + 3 < n; i++)
        len += (size_t)sprintf(big + len, "0,");
    len += (size_t)sprintf(big + len, "0]}");
    CHECK(tmpl_json_check(big, len, "ctx.json", &err) == VKLLM_OK, "%s", err.msg);
    char *out = NULL;
    CHECK(vkllm_template_render("{{ x|length }}", 14, big, &out, NULL, &err) == VKLLM_OK, "%s",
          err.msg);
    free(out);
    strcpy(big + len - 2, ",0]}");
    CHECK(tmpl_json_check(big, len + 2, "ctx.json", &err) == VKLLM_E_FORMAT);
    CHECK(!strcmp(err.msg, "ctx.json: more than 1000000 JSON values (too large for a chat "
                           "context)"),
          "%s", err.msg);
    CHECK(vkllm_template_render("x", 1, big, &out, NULL, &err) == VKLLM_E_FORMAT && !out);
    CHECK(!strncmp(err.msg, "context: more than", 18), "%s", err.msg);
    /* inside strings, escaped quotes included, nothing counts */
    memset(big, ',', 2 * n);
    memcpy(big, "{\"x\":\"\\\"", 8);
    memcpy(big + 2 * n, "\"}", 3);
    CHECK(tmpl_json_check(big, 2 * n + 2, "s.json", &err) == VKLLM_OK, "%s", err.msg);
    free(big);
}

/* Calls are checked as Python checks them: [1,2]|join(1,2,3) printed "1" and
 * f(1, a=2) ignored a=2, where Jinja2 raises a TypeError. Each expectation is
 * Jinja2 3.1.6's (its messages name Python's functions; ours the template's). */
static void test_arguments(void)
{
    FAILS("{{ [1,2]|join(1,2,3) }}", "join() takes at most 2 arguments (3 given)");
    FAILS("{{ [1,2]|join(x=1) }}", "join() got an unexpected keyword argument 'x'");
    FAILS("{{ [1,2]|join(',', d=',') }}", "join() got multiple values for argument 'd'");
    FAILS("{{ 'a'|upper(1) }}", "upper() takes no arguments (1 given)");
    FAILS("{{ 'a'|replace('a') }}", "replace() missing required argument 'new'");
    FAILS("{{ [1]|batch }}", "batch() missing required argument 'linecount'");
    FAILS("{{ 'a'|length(x=1) }}", "length() takes no keyword arguments");
    FAILS("{{ 1 is odd(2) }}", "odd() takes no arguments (1 given)");
    FAILS("{{ 1 is divisibleby }}", "divisibleby() missing required argument 'num'");
    FAILS("{{ 'ab'.strip('a', 'b') }}", "strip() takes at most 1 argument (2 given)");
    FAILS("{{ 'ab'.strip(chars='a') }}", "strip() takes no keyword arguments");
    FAILS("{{ x.items(1) }}", "items() takes no arguments (1 given)");
    FAILS("{{ range(1, 2, 3, 4) }}", "range() takes at most 3 arguments (4 given)");
    FAILS("{{ raise_exception() }}", "raise_exception() missing required argument 'message'");
    FAILS("{% for i in l %}{{ loop.cycle('a', x=1) }}{% endfor %}",
          "unexpected keyword argument 'x'");
    FAILS("{{ dict(a=1, **{'a': 2}) }}", "multiple values for keyword argument 'a'");
    FAILS("{{ 'a'.center(5, 'xy') }}", "fill character must be exactly one character long");
    /* a macro takes *args, **kwargs and caller only when its body uses them */
    FAILS("{% macro f(a) %}{{ a }}{% endmacro %}{{ f(1, a=2) }}",
          "macro 'f' takes no keyword argument 'a'");
    FAILS("{% macro f(a) %}{{ a }}{% endmacro %}{{ f(1, 2) }}",
          "macro 'f' takes not more than 1 argument(s)");
    FAILS("{% macro f() %}x{% endmacro %}{% call f() %}y{% endcall %}",
          "macro 'f' was invoked with two values for the special caller argument");
    FAILS("{% macro f() %}{{ caller() }}{% endmacro %}{{ f() }}", "No caller defined");
    RENDERS(
        "{% macro f(a) %}{{a}}{{kwargs}}{% endmacro %}{{ f(1, a=2) }}|{% macro g(a) %}{{a}}"
        "{{varargs}}{% endmacro %}{{ g(1, 2, 3) }}|{% macro h() %}[{{ caller() }}]{% endmacro %}"
        "{% call h() %}y{% endcall %}",
        "1{'a': 2}|1(2, 3)|[y]");
    /* what the checks let through now works: start and end, keepends, keywords passed on */
    RENDERS("{{ 'abc'.find('c', 1) }}{{ 'aaa'.rfind('aa') }}{{ 'abc'.startswith('b', 1) }}"
            "{{ 'abc'.count('', 4) }}{{ 'abc'.find('', 5) }}{{ 'h\u00e9llo'.find('l', -2) }}"
            "{{ 'abcabc'.rindex('c') }}",
            "21True0-135");
    RENDERS("{{ [1,2]|map('default', default_value=3)|list }}{{ [1,2]|select('divisibleby', "
            "num=2)|list }}{{ 6 is divisibleby(num=3) }}{{ '%(a)s'|format(a=1) }}"
            "{{ 'ff'|int(base=16) }}{{ '0b11'|int(base=0) }}{{ 'a\\nb\\r\\nc'.splitlines(true) }}",
            "[1, 2][2]True12553['a\\n', 'b\\r\\n', 'c']");
}

/* ---- limits: a hostile template ends with an error, quickly */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void test_limits(void)
{
    double t0 = now_s();
    /* 10^15 iterations without any output */
    FAILS("{% set r = range(100000) %}{% for a in r %}{% for b in r %}{% for c in r %}"
          "{% endfor %}{% endfor %}{% endfor %}",
          "steps");
    /* the same making garbage at every step runs into the memory limit */
    FAILS("{% for a in range(100000) %}{% set r = range(100000) %}{% endfor %}", "MiB of memory");
    /* unbounded recursion */
    FAILS("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "too deep");
    /* output that doubles: 2^40 bytes */
    FAILS("{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
          "{% endfor %}{{ ns.s }}",
          "");
    FAILS("{{ 'x' * 10000000000 }}", "too large");
    FAILS("{{ range(1000000) }}", "MAX_RANGE");
    /* deep nesting in the source */
    char deep[4096];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof deep - n, "{{ ");
    for (int i = 0; i < 1000; i++)
        deep[n++] = '(';
    n += (size_t)snprintf(deep + n, sizeof deep - n, "1 }}");
    deep[n] = 0;
    FAILS(deep, "nested too deeply");
    /* nested values that are too deep to print */
    FAILS("{% set ns = namespace(l=[]) %}{% for i in range(2000) %}{% set ns.l = [ns.l] %}"
          "{% endfor %}{{ ns.l }}",
          "too deeply");
    /* work inside one step: each of these is a few steps doing O(n) or O(n*m) work each
     * (a lower step budget, so that the ASan build is quick too) */
    static const char *const heavy[] = {
        "{% set s = 'a' * 1000000 %}{% for i in range(100000) %}{{ s[i] }}{% endfor %}",
        "{% set b = range(100000)|list %}{% set x = [b] * 1000 %}{% for i in range(1000) %}"
        "{{ x == x }}{% endfor %}",
        "{{ ('a' * 200000).rsplit('a' * 100000 + 'b') }}",
        "{% set s = 'a' * 100000 %}{% for i in range(100000) %}{{ s.strip('b' * 10000)|length }}"
        "{% endfor %}",
    };
    for (size_t i = 0; i < sizeof heavy / sizeof heavy[0]; i++) {
        struct tmpl_limits low = tmpl_default_limits();
        low.max_steps = 1000000;
        struct tmpl *h;
        struct vkllm_error e = {0};
        REQUIRE(tmpl_parse(heavy[i], strlen(heavy[i]), &low, &h, &e) == VKLLM_OK, "%s", e.msg);
        char *o = NULL;
        CHECK(tmpl_render_json(h, NULL, &o, NULL, &e) == VKLLM_E_INVALID && !o, "%s", heavy[i]);
        CHECK(strstr(e.msg, "units of work") || strstr(e.msg, "steps"), "%s: %s", heavy[i], e.msg);
        free(o);
        tmpl_free(h);
    }
    /* a low limit through the internal API */
    struct tmpl_limits lim = tmpl_default_limits();
    lim.max_output = 100;
    struct tmpl *t;
    struct vkllm_error err = {0};
    const char *src = "{% for i in range(1000) %}{{ i }}{% endfor %}";
    REQUIRE(tmpl_parse(src, strlen(src), &lim, &t, &err) == VKLLM_OK, "%s", err.msg);
    char *out = NULL;
    CHECK(tmpl_render_json(t, NULL, &out, NULL, &err) == VKLLM_E_INVALID && !out);
    CHECK(strstr(err.msg, "output exceeds"), "%s", err.msg);
    tmpl_free(t);
    double dt = now_s() - t0;
    fprintf(stderr, "limits: %.2f s\n", dt);
    CHECK(dt < 30, "the limits took %.1f s", dt);
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Renders SRC with at most STEPS steps; returns the CPU seconds it took. */
static double timed_render(const char *src, uint64_t steps, int *rc, struct vkllm_error *e)
{
    struct tmpl_limits lim = tmpl_default_limits();
    lim.max_steps = steps;
    struct tmpl *t;
    *rc = tmpl_parse(src, strlen(src), &lim, &t, e);
    if (*rc) return 0;
    char *out = NULL;
    double t0 = cpu_s();
    *rc = tmpl_render_json(t, NULL, &out, NULL, e);
    double dt = cpu_s() - t0;
    free(out);
    tmpl_free(t);
    return dt;
}

/* The work limit priced per 16 bytes what costs per character: a 2 MB string
 * and s.isupper() in a loop ran for minutes (92 ms a call, the limit reached
 * after 1,280 calls). Now every operation pays for what it does, so that the
 * work budget runs out about as fast as the step budget. The prober's worst
 * cases (and their kin) run with a tenth of the default budget, in CPU time
 * against a loop that only spends steps: before, the first took 100 times as
 * long; the bound allows 5 times (sanitizers slow the two about alike). */
static void test_work(void)
{
    static const char *const cases[] = {
        "{% set s = ' ' * 2000000 %}{% for i in range(5000) %}{% set x = s.isupper() %}"
        "{% endfor %}",
        "{% set s = '\u00e9' * 1000000 %}{% for i in range(5000) %}{% set x = s.isalpha() %}"
        "{% endfor %}",
        "{% set s = 'a b' * 1000000 %}{% for i in range(5000) %}{% set x = s|wordcount %}"
        "{% endfor %}",
        "{% set s = '\u00e9' * 1000000 %}{% for i in range(5000) %}{% set x = s.split() %}"
        "{% endfor %}",
        "{% set s = ' ' * 2000000 %}{% for i in range(5000) %}{% set x = s[-1] %}{% endfor %}",
        "{% set s = '\u00e9' * 1000000 %}{% for i in range(5000) %}{% set x = s[500000] %}"
        "{% endfor %}",
        "{% set s = '\u00e9' * 1000000 %}{% for i in range(5000) %}{% set x = s|length %}"
        "{% endfor %}",
        "{% set s = ' ' * 2000000 %}{% for i in range(5000) %}{% set x = s.splitlines() %}"
        "{% endfor %}",
        "{% set s = ' ' * 2000000 %}{% for i in range(5000) %}{% set x = s|title %}{% endfor %}",
        "{% set s = 'a' * 2000000 %}{% set t = 'a' * 2000000 %}{% for i in range(100000) %}"
        "{% set x = s == t %}{% endfor %}",
        "{% set s = 'a' * 2000000 %}{% set n = 'a' * 1000 + 'b' %}{% for i in range(100000) %}"
        "{% set x = s.find(n) %}{% endfor %}",
        "{% set l = range(100000)|map('string')|list %}{% for i in range(100000) %}"
        "{% set x = 'x'.startswith(l) %}{% endfor %}",
        "{% set r = range(100000) %}{% for i in range(100000) %}{% set x = r|sum %}{% endfor %}",
        "{% set l = [0.1 + 0.2] * 100000 %}{% for i in range(100000) %}{% set x = l|tojson %}"
        "{% endfor %}",
        "{% set s = ['\x01' * 1000000] %}{% for i in range(100000) %}{% set x = s|string %}"
        "{% endfor %}",
        "{% set s = 'x' * 2000000 %}{% for i in range(100000) %}{% set x = s.format() %}"
        "{% endfor %}",
        "{% set b = range(100000)|list %}{% set x = [b] * 1000 %}{% for i in range(1000) %}"
        "{{ x == x }}{% endfor %}",
        /* nothing repeated 10^15 times looped 10^15 times */
        "{{ '' * 1000000000000000 }}{{ [] * 1000000000000000 }}",
    };
    const uint64_t steps = 1000000;
    int rc;
    struct vkllm_error e = {0};
    double base = timed_render("{% set r = range(100000) %}{% for a in r %}{% for b in r %}"
                               "{% endfor %}{% endfor %}",
                               steps, &rc, &e);
    CHECK(rc == VKLLM_E_INVALID && strstr(e.msg, "steps"), "%s", e.msg);
    double worst = 0;
    size_t worst_i = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double dt = timed_render(cases[i], steps, &rc, &e);
        CHECK(rc == VKLLM_OK || strstr(e.msg, "units of work") || strstr(e.msg, "MiB of memory"),
              "%s: %s", cases[i], e.msg);
        CHECK(dt < 5 * base + 0.05, "%.3f s (steps alone: %.3f s): %s", dt, base, cases[i]);
        if (dt > worst) worst = dt, worst_i = i;
    }
    fprintf(stderr, "work: steps alone %.3f s, the worst case %.3f s (case %zu)\n", base, worst,
            worst_i);
}

static int stop_calls;
static bool stop_after(void *user)
{
    return ++stop_calls >= *(int *)user;
}

/* A render can be stopped (Ctrl+C in a chat): Ctrl+C was seen only after the
 * render, which a hostile template made last minutes. */
static void test_stop(void)
{
    const char *endless[] = {
        /* work inside few steps, and steps doing little work */
        "{% set s = ' ' * 2000000 %}{% for i in range(100000) %}{% set x = s.isupper() %}"
        "{% endfor %}",
        "{% set r = range(100000) %}{% for a in r %}{% for b in r %}{% endfor %}{% endfor %}",
    };
    for (size_t i = 0; i < 2; i++) {
        int after = 3;
        stop_calls = 0;
        char *out = (char *)"x";
        struct vkllm_error err = {0};
        double t0 = now_s();
        int rc = vkllm_template_render_stop(endless[i], strlen(endless[i]), "{}", stop_after,
                                            &after, &out, NULL, &err);
        double dt = now_s() - t0;
        CHECK(rc == VKLLM_E_IO && !out && !strcmp(err.msg, "stopped"), "%d %s", rc, err.msg);
        CHECK(stop_calls == 3 && dt < 1, "%d calls, %.2f s", stop_calls, dt);
    }
    /* a stop function that never stops changes nothing */
    int never = 1 << 30;
    stop_calls = 0;
    char *out = NULL;
    size_t n = 0;
    struct vkllm_error err = {0};
    const char *t = "{% for i in range(100000) %}{% endfor %}{{ messages[0].role }}";
    CHECK(vkllm_template_render_stop(t, strlen(t), ctx_json, stop_after, &never, &out, &n, &err) ==
              VKLLM_OK,
          "%s", err.msg);
    CHECK(out && !strcmp(out, "system") && n == 6 && stop_calls > 0, "%s, %d calls", out,
          stop_calls);
    free(out);
}

/* ---- a GGUF with a chat template, for the CLI test */

static int write_gguf(const char *path)
{
    vkllm_gguf_writer *w;
    struct vkllm_error err = {0};
    if (vkllm_gguf_writer_create(&w, &err)) return 1;
    const char *tokens[] = {"<unk>", "<|bos|>", "<|eos|>", "a"};
    uint32_t bos = 1, eos = 2;
    vkllm_gguf_writer_set_str(w, "general.architecture", "llama");
    vkllm_gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    vkllm_gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, NULL, 4);
    vkllm_gguf_writer_set_uint32(w, "tokenizer.ggml.bos_token_id", bos);
    vkllm_gguf_writer_set_uint32(w, "tokenizer.ggml.eos_token_id", eos);
    vkllm_gguf_writer_set_str(w, "tokenizer.chat_template",
                              "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}"
                              "{{ eos_token }}{% endfor %}");
    int rc = vkllm_gguf_writer_write(w, path, &err);
    vkllm_gguf_writer_destroy(w);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    return rc != 0;
}

static int write_cases(const char *dir)
{
    json_error_t jerr;
    json_t *cases = json_load_file(VKLLM_TEST_DATA "/templates/cases.json", 0, &jerr);
    if (!cases) return 1;
    size_t ti, ci;
    json_t *t, *c;
    json_array_foreach(json_object_get(cases, "templates"), ti, t)
    {
        json_array_foreach(json_object_get(t, "cases"), ci, c)
        {
            char path[1024];
            snprintf(path, sizeof path, "%s/%s.%s.json", dir,
                     json_string_value(json_object_get(t, "name")),
                     json_string_value(json_object_get(c, "id")));
            if (json_dump_file(json_object_get(c, "context"), path, 0)) return 1;
            printf("%s %s %s %s\n", json_string_value(json_object_get(t, "template_file")), path,
                   json_string_value(json_object_get(c, "expected_file")),
                   json_string_value(json_object_get(c, "expect")));
        }
    }
    json_decref(cases);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-gguf")) return write_gguf(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--write-cases")) return write_cases(argv[2]);
    test_cases();
    test_whitespace();
    test_loops();
    test_values();
    test_round();
    test_source_date_epoch();
    test_tojson();
    test_undefined();
    test_errors();
    test_json_values();
    test_arguments();
    test_limits();
    test_work();
    test_stop();
    return TEST_REPORT();
}
