/* cmd_chat.c: vkllm chat: a conversation in the terminal (or through a pipe).
 * Each line read is a user message; the reply streams to stdout. The
 * conversation, its template and the reuse of the KV cache live in the engine
 * (vkllm_chat); this file reads lines, runs the commands and the sampling
 * loop, and turns Ctrl+C into "stop the reply". */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The commands, for --help and /help. */
#define CHAT_COMMANDS                                                                              \
    "  /reset                 start over (a --system prompt stays)\n"                              \
    "  /save FILE, /load FILE keep the conversation as JSON, or take one back\n"                   \
    "  /lora                  list the LoRA adapters: number, file, scale, on/off, rank, alpha\n"  \
    "  /lora FILE [SCALE]     load an adapter and apply it too (at scale 1 by default)\n"          \
    "  /lora off N, /lora on N  stop or resume applying adapter N (it stays loaded)\n"             \
    "  /lora scale N S        apply adapter N at scale S\n"                                        \
    "  /help                  this list\n"                                                         \
    "  /exit                  quit (so does the end of input)\n"                                   \
    "A change of adapters empties the KV cache: the next turn reads the whole\n"                   \
    "conversation again.\n"

static const char chat_usage[] =
    "usage: vkllm chat -m MODEL [options]\n"
    "\n"
    "Reads messages from stdin, one per line, and streams the model's replies.\n"
    "Commands:\n" CHAT_COMMANDS
    "Ctrl+C stops a reply; at the prompt it exits (status 130); during /save or /load the\n"
    "command finishes and the prompt returns. A message that does not fit the context\n"
    "or a command that fails is an error line, and the chat goes on without it.\n"
    "\n"
    "  -m, --model FILE       GGUF model (default: the bundled stories260K.gguf)\n"
    "      --system TEXT      the system prompt\n"
    "      --chat-template-file FILE  a Jinja chat template instead of the model's\n"
    "  -n, --n-predict N      most tokens per reply; -1 until the model stops (default -1)\n"
    "  -c, --ctx-size N       context size in tokens (default: the model's, at most 4096)\n"
    "  -b, --batch-size N     prompt tokens per GPU step, as one batch (default 512)\n"
    "  -ub, --ubatch-size N   physical batch: steps of at most N tokens (default 512)\n"
    "  -ctk, --cache-type-k f16|q8_0  KV cache type of K (default f16)\n"
    "  -ctv, --cache-type-v f16|q8_0  KV cache type of V (default f16)\n"
    "      --temp T           temperature; 0 is greedy (default 0.8)\n"
    "      --top-k K          keep the K most likely tokens; 0 keeps all (default 40)\n"
    "      --top-p P          keep the smallest set with probability >= P (default 0.95)\n"
    "      --min-p P          drop tokens below P times the most likely (default 0.05)\n"
    "      --repeat-penalty F penalize recent tokens; 1 is off (default 1.0)\n"
    "      --presence-penalty F  subtract F (-2 to 2) from recent tokens' logits (default 0)\n"
    "      --frequency-penalty F subtract F (-2 to 2) times each recent token's count (default 0)\n"
    "      --repeat-last-n N  how many recent tokens the penalty sees (default 64)\n"
    "  -s, --seed S           random seed (default: from the clock)\n"
    "      --stop TEXT        end a reply at TEXT (not printed); may be repeated\n"
    "      --ignore-eos       keep generating after end-of-generation tokens\n" CLI_LORA_USAGE
    "      --device D         Vulkan device: index or part of its name (see vkllm devices)\n"
    "      --validate         enable the Khronos validation layer\n";

/* Ctrl+C: during a reply it ends the reply; at the prompt it ends the
 * program; a /save or /load under way finishes. SIGTERM and SIGHUP (the
 * terminal closed) end the program once the reply or command under way
 * stops: killed mid-/save, it left the temporary file. The signal may land on
 * any thread (the driver has its own), so the handler sets flags and writes a
 * byte to a pipe that the line reader polls beside stdin: a signal just
 * before the read still wakes it. */
static atomic_int interrupted;      /* any of them: stop the reply */
static volatile sig_atomic_t ended; /* SIGTERM or SIGHUP, raised again at the end */
static int wake[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    if (sig != SIGINT && !ended) ended = sig;
    atomic_store(&interrupted, 1);
    if (write(wake[1], "", 1) < 0) { /* full: a wake-up is pending anyway */
    }
    errno = saved;
}

/* Ctrl+C stops a chat template's render too (a hostile one works for a
 * second or two). */
static bool chat_stop(void *user)
{
    (void)user;
    return atomic_load(&interrupted);
}

/* Forgets Ctrl+C presses so far (not a request to end). */
static void drain_interrupts(void)
{
    if (ended) return;
    char buf[64];
    while (read(wake[0], buf, sizeof buf) > 0) {
    }
    atomic_store(&interrupted, 0);
}

/* The signals that stop chat. An ignored SIGHUP (nohup) stays ignored. */
static const int chat_signals[] = {SIGINT, SIGTERM, SIGHUP};
enum { N_CHAT_SIGNALS = sizeof chat_signals / sizeof chat_signals[0] };

static void signals_catch(struct sigaction old[N_CHAT_SIGNALS])
{
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_CHAT_SIGNALS; i++)
        if (sigaction(chat_signals[i], NULL, &old[i]) == 0 && old[i].sa_handler != SIG_IGN)
            sigaction(chat_signals[i], &sa, NULL);
}

/* Puts the old actions back; after SIGTERM or SIGHUP ends the program by it,
 * so that the shell sees how it ended, and returns 128 + N if it is blocked. */
static int signals_restore(const struct sigaction old[N_CHAT_SIGNALS], int status)
{
    for (int i = 0; i < N_CHAT_SIGNALS; i++)
        sigaction(chat_signals[i], &old[i], NULL);
    const int sig = ended;
    if (!sig) return status;
    signal(sig, SIG_DFL);
    fflush(stdout);
    fflush(stderr);
    raise(sig);
    return 128 + sig;
}

/* Lines of stdin, read with read() so that poll() can watch the pipe too.
 * The unread text is buf[start, n): lines are taken from its front without
 * moving the rest (one move per line made many blank lines after a long one
 * quadratic), which moves down only when more must be read. */
struct lines {
    char *buf;
    size_t start, n, cap;
    bool eof;
};

/* A message longer than this is refused: no context holds it, and without a
 * limit an endless line (stdin from /dev/zero) would take all the memory. */
#define CHAT_MAX_LINE (16u << 20)

/* The next line (NUL-terminated, no newline) in *LINE; returns its length, -1
 * at the end of input, -2 on Ctrl+C, -3 after an error line. */
static long read_line(struct lines *r, char **line)
{
    for (;;) {
        if (atomic_load(&interrupted)) return -2;
        char *text = r->buf + r->start;
        const size_t held = r->n - r->start;
        char *nl = held ? memchr(text, '\n', held) : NULL;
        if (nl || (r->eof && held)) {
            size_t len = nl ? (size_t)(nl - text) : held;
            text[len] = 0; /* the newline, or the byte each read leaves free */
            r->start += nl ? len + 1 : len;
            *line = text;
            return (long)len;
        }
        if (r->eof) return -1;
        struct pollfd fds[2] = {{.fd = 0, .events = POLLIN}, {.fd = wake[0], .events = POLLIN}};
        if (poll(fds, 2, -1) < 0 && errno != EINTR) return -1;
        if (atomic_load(&interrupted) || (fds[1].revents & POLLIN)) return -2;
        if (!(fds[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        if (held >= CHAT_MAX_LINE) {
            cli_error("stdin: a line of more than %u MiB", CHAT_MAX_LINE >> 20);
            return -3;
        }
        if (r->start) { /* the lines taken go */
            memmove(r->buf, text, held);
            r->n = held;
            r->start = 0;
        }
        if (r->n + 4096 > r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 8192;
            char *p = realloc(r->buf, cap);
            if (!p) {
                cli_error("out of memory reading stdin");
                return -3;
            }
            r->buf = p;
            r->cap = cap;
        }
        ssize_t got = read(0, r->buf + r->n, r->cap - r->n - 1);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) { /* stdin a directory, a lost terminal: not the end of input */
            cli_error("stdin: %s", strerror(errno));
            return -3;
        }
        if (got == 0)
            r->eof = true;
        else
            r->n += (size_t)got;
    }
}

static void on_notice(const char *msg, void *user)
{
    (void)user;
    fprintf(stderr, "vkllm: %s\n", cli_shown(msg)); /* it may quote the model's file */
}

/* The LoRA adapters loaded (by --lora flags and /lora), in the order they
 * apply. One switched off stays loaded, so that /lora on uploads nothing. */
struct chat_lora {
    struct cli_lora l;         /* paths, scales, the adapters */
    bool on[CLI_LORA_MAX];     /* in the session's set */
    char *owned[CLI_LORA_MAX]; /* the paths /lora copied (argv's are not) */
};

struct chat_state {
    vkllm_model *model;
    vkllm_session *session;
    vkllm_sampler *sampler;
    vkllm_stream *stream;
    vkllm_chat *chat;
    struct chat_lora lora;
    long long n_predict;
    int turn;
};

static int lora_n_on(const struct chat_lora *cl);

/* NaN or inf logits while adapters are on come from an adapter's values or
 * scale (the engine's message names them), which /lora off or /lora scale
 * mends: the turn goes, with the user's message, and the conversation stays.
 * False for any other error. */
static bool adapter_numeric(struct chat_state *cs, const struct vkllm_error *err, bool in_reply)
{
    if (err->code != VKLLM_E_NUMERIC || !lora_n_on(&cs->lora)) return false;
    if (in_reply) fputc('\n', stdout); /* what was printed of the reply is dropped */
    cli_error("%s (the message is left out: /lora off N or /lora scale N S mends it)", err->msg);
    vkllm_chat_pop(cs->chat);
    cs->turn--;
    return true;
}

/* One reply: prefill, then sample and stream until the reply ends. Returns
 * false after a fatal error (message printed) or when stdout failed (main
 * reports it). */
static bool reply(struct chat_state *cs)
{
    struct vkllm_error err = {0};
    struct vkllm_chat_turn info;
    cs->turn++;
    if (vkllm_chat_prefill(cs->chat, &info, &err)) {
        if (adapter_numeric(cs, &err, false)) return true;
        if (atomic_load(&interrupted)) /* stopped in the template's render */
            fprintf(stderr, "vkllm: interrupted (the message is left out)\n");
        else if (err.code == VKLLM_E_CONTEXT_FULL)
            cli_error("%s; try a larger -c (the message is left out)", err.msg);
        else if (err.code == VKLLM_E_INVALID)
            cli_error("%s (the message is left out)", err.msg);
        else
            cli_error("%s", err.msg);
        /* the message that did not fit goes, so that the next one may */
        vkllm_chat_pop(cs->chat);
        cs->turn--;
        return err.code == VKLLM_E_CONTEXT_FULL || err.code == VKLLM_E_INVALID ||
               atomic_load(&interrupted);
    }
    fprintf(stderr, "vkllm: turn %d: %u new prompt tokens (%u cached)\n", cs->turn, info.n_new,
            info.n_cached);
    /* the repetition penalty sees the whole prompt, as run's and serve's do
     * for the same conversation: a history of this conversation alone, not
     * one kept across /reset and /load (probe 7, C-1) */
    uint32_t n_tokens;
    const int32_t *tokens = vkllm_chat_tokens(cs->chat, &n_tokens);
    vkllm_sampler_reset(cs->sampler);
    for (uint32_t i = 0; i < n_tokens; i++)
        vkllm_sampler_accept(cs->sampler, tokens[i]);

    vkllm_stream_reset(cs->stream);
    const char *text;
    size_t len;
    long long n_gen = 0;
    const char *why = NULL;
    while (cs->n_predict < 0 || n_gen < cs->n_predict) {
        if (atomic_load(&interrupted)) {
            why = "interrupted";
            break;
        }
        int32_t tok = vkllm_sampler_sample(cs->sampler, vkllm_session_logits(cs->session, -1));
        if (tok < 0) {
            cli_error("sampling failed (%s)", vkllm_strerror(tok));
            return false;
        }
        n_gen++;
        int st = vkllm_stream_push(cs->stream, tok, &text, &len);
        if (st < 0) {
            cli_error("%s", vkllm_strerror(st));
            return false;
        }
        cli_write_text(text, len);
        if (!cli_flush()) return false; /* no one reads the replies */
        if (st != VKLLM_STREAM_MORE) break;
        if (cs->n_predict >= 0 && n_gen >= cs->n_predict) break;
        int rc = vkllm_chat_decode_token(cs->chat, tok, &err);
        if (rc == VKLLM_E_CONTEXT_FULL) {
            why = "context full: the next turn drops the oldest ones";
            break;
        }
        if (rc) {
            if (adapter_numeric(cs, &err, true)) return cli_flush();
            cli_error("%s", err.msg);
            return false;
        }
    }
    vkllm_stream_finish(cs->stream, &text, &len);
    cli_write_text(text, len);
    fputc('\n', stdout);
    if (!cli_flush()) return false;
    if (why) fprintf(stderr, "vkllm: %s\n", why);
    size_t rlen;
    const char *r = vkllm_stream_reply(cs->stream, &rlen);
    if (vkllm_chat_add(cs->chat, "assistant", r, rlen, &err)) {
        cli_error("%s", err.msg);
        return false;
    }
    fprintf(stderr, "vkllm: turn %d: replied %lld tokens (%u in the cache)\n", cs->turn, n_gen,
            vkllm_session_pos(cs->session));
    return true;
}

/* LEN bytes of S, typed by the user, as vkllm_printable shows them (at most
 * about 200 bytes of S): echoed raw, an escape sequence would act on the
 * terminal. Returns BUF. */
static const char *printable(char buf[static 256], const char *s, size_t len)
{
    size_t took = vkllm_printable(buf, 252, s, len);
    if (took < len) strcat(buf, "...");
    return buf;
}

/* ============================== /lora ============================== */

static int lora_n_on(const struct chat_lora *cl)
{
    int n = 0;
    for (int i = 0; i < cl->l.n; i++)
        n += cl->on[i];
    return n;
}

/* Makes the adapters switched on, at their scales, the session's set. A
 * change empties the session's KV cache (unless only the output matrix is
 * adapted); the conversation sees at its next prefill that the cache holds
 * fewer tokens than it remembers, and decodes the conversation again. */
static int lora_apply(struct chat_state *cs, struct vkllm_error *err)
{
    const struct chat_lora *cl = &cs->lora;
    vkllm_adapter *ad[CLI_LORA_MAX];
    float scale[CLI_LORA_MAX];
    uint32_t n = 0;
    for (int i = 0; i < cl->l.n; i++)
        if (cl->on[i]) {
            ad[n] = cl->l.ad[i];
            scale[n++] = cl->l.scale[i];
        }
    return vkllm_session_set_adapters(cs->session, ad, scale, n, err);
}

/* "vkllm: lora 1: a.gguf at scale 1, on (14 matrices, rank 8, alpha 16)" */
static void lora_show(const struct chat_lora *cl, int i)
{
    struct vkllm_adapter_info ai;
    vkllm_adapter_describe(cl->l.ad[i], &ai);
    char alpha[48] = "no alpha";
    if (ai.alpha != 0) snprintf(alpha, sizeof alpha, "alpha %g", ai.alpha);
    fprintf(stderr, "vkllm: lora %d: %s at scale %g, %s (%u matrices, rank %u%s, %s)\n", i + 1,
            cli_shown(cl->l.path[i]), cl->l.scale[i], cl->on[i] ? "on" : "off", ai.n_tensors,
            ai.rank_max, ai.rank_min != ai.rank_max ? " at most" : "", alpha);
}

/* What a change did, with how many adapters now apply. */
static void lora_changed(const struct chat_lora *cl, const char *what)
{
    const int on = lora_n_on(cl);
    fprintf(stderr, "vkllm: lora: %s (%d adapter%s on)\n", what, on, on == 1 ? "" : "s");
}

/* Splits S at blanks into at most MAX words; returns how many there are. */
static int split_words(char *s, char **word, int max)
{
    int n = 0;
    for (char *tok = strtok(s, " \t"); tok; tok = strtok(NULL, " \t"))
        if (n++ < max) word[n - 1] = tok;
    return n;
}

/* Adapter number V (from 1) of /lora WHAT, as an index; -1 after an error line. */
static int lora_index(const struct chat_lora *cl, const char *what, const char *v)
{
    long long i;
    if (!cl->l.n) {
        cli_error("%s: no adapter is loaded (/lora FILE adds one)", what);
        return -1;
    }
    if (!cli_int(what, v, INT32_MIN, INT32_MAX, &i)) return -1;
    if (i < 1 || i > cl->l.n) {
        cli_error("%s: there is no adapter %lld (%d loaded; /lora lists them)", what, i, cl->l.n);
        return -1;
    }
    return (int)i - 1;
}

/* /lora FILE [SCALE]: loads FILE and applies it after the others. */
static void lora_add(struct chat_state *cs, char *arg)
{
    struct chat_lora *cl = &cs->lora;
    struct vkllm_error err = {0};
    /* the last word is the scale when it starts as a number does (so a file
     * name whose last word does, "my 2.gguf", needs its scale given too) */
    double scale = 1.0;
    char *blank = NULL;
    for (char *p = arg; *p; p++)
        if (*p == ' ' || *p == '\t') blank = p;
    if (blank && blank[1] && strchr("0123456789+-.", blank[1])) {
        if (!cli_float("/lora", blank + 1, -1e6, 1e6, &scale)) return;
        while (blank > arg && (blank[-1] == ' ' || blank[-1] == '\t'))
            blank--;
        *blank = 0;
    }
    if (cl->l.n == CLI_LORA_MAX) {
        cli_error("/lora: at most %d adapters", CLI_LORA_MAX);
        return;
    }
    char *path = strdup(arg);
    if (!path) {
        cli_error("out of memory");
        return;
    }
    vkllm_adapter *ad = NULL;
    if (vkllm_adapter_load(cs->model, path, &ad, &err)) {
        cli_error("%s", err.msg);
        free(path);
        return;
    }
    const int i = cl->l.n++;
    cl->l.path[i] = cl->owned[i] = path;
    cl->l.ad[i] = ad;
    cl->l.scale[i] = (float)scale;
    cl->on[i] = true;
    if (lora_apply(cs, &err)) {
        cli_error("%s", err.msg);
        cl->l.n--;
        cl->owned[i] = NULL;
        vkllm_adapter_free(ad);
        free(path);
        return;
    }
    char what[320];
    snprintf(what, sizeof what, "added %s at scale %g", cli_shown(path), (double)(float)scale);
    lora_changed(cl, what);
}

/* /lora with ARG (NULL: none): lists, adds, switches off or on, rescales. */
static void lora_command(struct chat_state *cs, char *arg)
{
    struct chat_lora *cl = &cs->lora;
    struct vkllm_error err = {0};
    if (!arg || !*arg) {
        if (!cl->l.n) fprintf(stderr, "vkllm: no LoRA adapters (/lora FILE [SCALE] adds one)\n");
        for (int i = 0; i < cl->l.n; i++)
            lora_show(cl, i);
        return;
    }
    const size_t verb = strcspn(arg, " \t");
#define VERB(s) (verb == strlen(s) && !strncmp(arg, s, verb))
    if (!VERB("off") && !VERB("on") && !VERB("scale")) {
        lora_add(cs, arg);
        return;
    }
    const bool scale = VERB("scale");
#undef VERB
    char *word[3];
    const int n = split_words(arg, word, 3);
    if (n != (scale ? 3 : 2)) {
        if (scale)
            cli_error("/lora scale needs an adapter number and a scale (/lora scale 1 0.5)");
        else
            cli_error("/lora %s needs an adapter number (/lora lists them)", word[0]);
        return;
    }
    char what[64];
    snprintf(what, sizeof what, "/lora %s", word[0]);
    const int i = lora_index(cl, what, word[1]);
    double s = 0;
    if (i < 0 || (scale && !cli_float(what, word[2], -1e6, 1e6, &s))) return;
    const bool was_on = cl->on[i];
    const float was = cl->l.scale[i];
    if (scale)
        cl->l.scale[i] = (float)s;
    else
        cl->on[i] = !strcmp(word[0], "on");
    if (lora_apply(cs, &err)) {
        cl->on[i] = was_on;
        cl->l.scale[i] = was;
        cli_error("%s", err.msg);
        return;
    }
    char line[320];
    snprintf(line, sizeof line, "adapter %d (%s) %s at scale %g", i + 1, cli_shown(cl->l.path[i]),
             cl->on[i] ? "on" : "off", cl->l.scale[i]);
    lora_changed(cl, line);
}

/* A line starting with '/', of LEN bytes. Returns 0 to go on, 1 to end. */
static int command(struct chat_state *cs, char *line, size_t len, const char *system)
{
    char shown[256];
    struct vkllm_error err = {0};
    /* blanks after the last word are not part of a file name: no one sees them */
    while (len > 1 && (line[len - 1] == ' ' || line[len - 1] == '\t'))
        line[--len] = 0;
    char *arg = strpbrk(line, " \t");
    size_t name_len = arg ? (size_t)(arg - line) : len;
    while (arg && (*arg == ' ' || *arg == '\t'))
        arg++;
#define IS(s) (name_len == strlen(s) && !strncmp(line, s, name_len))
    if ((IS("/exit") || IS("/quit") || IS("/reset") || IS("/help")) && arg) {
        cli_error("%.*s takes no argument (got '%s')", (int)name_len, line,
                  printable(shown, arg, strlen(arg)));
        return 0;
    }
    if (IS("/exit") || IS("/quit")) return 1;
    if (IS("/reset")) {
        vkllm_chat_clear(cs->chat, system != NULL);
        cs->turn = 0;
        fprintf(stderr, "vkllm: the conversation starts over\n");
    } else if (IS("/help")) {
        fputs("Commands:\n" CHAT_COMMANDS, stderr);
    } else if (IS("/lora")) {
        lora_command(cs, arg);
    } else if ((IS("/save") || IS("/load")) && (!arg || !*arg)) {
        cli_error("%.*s needs a file name", (int)name_len, line);
    } else if (IS("/save")) {
        /* the file replaced keeps its other names (hard links): they hold the
         * old conversation, which the user may not expect */
        const uintmax_t names = cli_names_of(arg);
        if (vkllm_chat_save(cs->chat, arg, &err)) {
            cli_error("%s", err.msg);
        } else {
            fprintf(stderr, "vkllm: saved %zu message%s to %s\n", vkllm_chat_count(cs->chat),
                    vkllm_chat_count(cs->chat) == 1 ? "" : "s", printable(shown, arg, strlen(arg)));
            if (names > 1)
                fprintf(stderr,
                        "vkllm: note: %s had %ju names (hard links); the others keep the old "
                        "file\n",
                        shown, names);
        }
    } else if (IS("/load")) {
        if (vkllm_chat_load(cs->chat, arg, &err))
            cli_error("%s", err.msg);
        else
            fprintf(stderr, "vkllm: loaded %zu message%s from %s\n", vkllm_chat_count(cs->chat),
                    vkllm_chat_count(cs->chat) == 1 ? "" : "s", printable(shown, arg, strlen(arg)));
    } else {
        cli_error("unknown command '%s' (/reset, /save FILE, /load FILE, /lora, /help, /exit)",
                  printable(shown, line, name_len));
    }
#undef IS
    return 0;
}

int cmd_chat(int argc, char **argv)
{
    const char *model_path = NULL, *device = NULL, *system = NULL, *template_path = NULL;
    long long n_ctx = 0, n_batch = 0, n_ubatch = 0, seed = -1;
    uint32_t type_k = VKLLM_CACHE_F16, type_v = VKLLM_CACHE_F16; /* -ctk, -ctv */
    bool ignore_eos = false, validate = false, is_k;
    struct vkllm_sampler_params sp = vkllm_sampler_defaults(0);
    struct chat_state cs = {.n_predict = -1};
    const char **stops = calloc((size_t)argc, sizeof *stops);
    int n_stops = 0;
    if (!stops) return cli_error("out of memory");

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        long long n;
        double f;
#define VALUE() ((v = cli_value(argc, argv, &i)) != NULL)
#define FAIL()                                                                                     \
    do {                                                                                           \
        free(stops);                                                                               \
        return 1;                                                                                  \
    } while (0)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(chat_usage, stdout);
            free(stops);
            return 0;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!VALUE()) FAIL();
            model_path = v;
        } else if (!strcmp(a, "--system")) {
            if (!VALUE()) FAIL();
            system = v;
        } else if (!strcmp(a, "--chat-template-file")) {
            if (!VALUE()) FAIL();
            template_path = v;
        } else if (!strcmp(a, "--stop")) {
            if (!VALUE() || !cli_stop_text(a, v)) FAIL();
            stops[n_stops++] = v;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!VALUE() || !cli_int(a, v, -1, 1 << 30, &cs.n_predict)) FAIL();
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 24, &n_ctx)) FAIL();
        } else if (!strcmp(a, "-b") || !strcmp(a, "--batch-size")) {
            if (!VALUE() || !cli_int(a, v, 1, 1 << 16, &n_batch)) FAIL();
        } else if (!strcmp(a, "-ub") || !strcmp(a, "--ubatch-size")) {
            if (!VALUE() || !cli_int(a, v, 1, 1 << 16, &n_ubatch)) FAIL();
        } else if (cli_is_cache_flag(a, &is_k)) {
            if (!VALUE() || !cli_cache_type(a, v, is_k ? &type_k : &type_v)) FAIL();
        } else if (!strcmp(a, "--temp")) {
            if (!VALUE() || !cli_float(a, v, 0, 1e6, &f)) FAIL();
            sp.temp = (float)f;
        } else if (!strcmp(a, "--top-k")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 30, &n)) FAIL();
            sp.top_k = (int32_t)n;
        } else if (!strcmp(a, "--top-p")) {
            if (!VALUE() || !cli_float(a, v, 1e-9, 1, &f)) FAIL();
            sp.top_p = (float)f;
        } else if (!strcmp(a, "--min-p")) {
            if (!VALUE() || !cli_float(a, v, 0, 1, &f)) FAIL();
            sp.min_p = (float)f;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!VALUE() || !cli_float(a, v, 1e-6, 1e6, &f)) FAIL();
            sp.repeat_penalty = (float)f;
        } else if (!strcmp(a, "--presence-penalty")) {
            if (!VALUE() || !cli_float(a, v, -2, 2, &f)) FAIL();
            sp.presence_penalty = (float)f;
        } else if (!strcmp(a, "--frequency-penalty")) {
            if (!VALUE() || !cli_float(a, v, -2, 2, &f)) FAIL();
            sp.frequency_penalty = (float)f;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!VALUE() || !cli_int(a, v, 0, 1 << 20, &n)) FAIL();
            sp.repeat_last_n = (int32_t)n;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (!VALUE() || !cli_int(a, v, 0, INT64_MAX, &seed)) FAIL();
        } else if (!strcmp(a, "--device")) {
            if (!VALUE()) FAIL();
            device = v;
        } else if ((n = cli_lora_arg(&cs.lora.l, argc, argv, &i)) != 0) {
            if (n < 0) FAIL();
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(a, "--validate")) {
            validate = true;
        } else {
            free(stops);
            return cli_error("unknown option '%s' for vkllm chat (see vkllm chat --help)", a);
        }
#undef FAIL
#undef VALUE
    }
    if (!(model_path = cli_model(model_path))) {
        free(stops);
        return 1;
    }
    sp.seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    struct vkllm_error err = {0};
    vkllm_context *ctx = NULL;
    vkllm_model *model = NULL;
    char *tmpl = NULL, *line = NULL;
    size_t tmpl_len = 0;
    struct lines lines = {0};
    struct sigaction old_actions[N_CHAT_SIGNALS];
    bool caught = false;
    int status = 1;

    if (template_path && !(tmpl = cli_read_file(template_path, &tmpl_len))) goto done;
    if (template_path && tmpl_len == 0) { /* else the model's template would be used, silently */
        cli_error("%s: the template is empty", template_path);
        goto done;
    }
    if (cli_model_check(model_path)) goto done;
    struct vkllm_context_params cp = {.device = device, .validation = validate};
    if (vkllm_context_create(&cp, &ctx, &err)) goto fail;
    cli_context_notes(ctx);
    struct vkllm_session_params ssp = {.n_ctx = (uint32_t)n_ctx,
                                       .n_batch = (uint32_t)n_batch,
                                       .n_ubatch = (uint32_t)n_ubatch,
                                       .type_k = type_k,
                                       .type_v = type_v};
    /* a context too big for the device, or a wrong adapter, is refused
     * before any upload */
    struct vkllm_model_params mp = {
        .session = &ssp, .adapters = cs.lora.l.path, .n_adapters = (uint32_t)cs.lora.l.n};
    if (vkllm_model_load(ctx, model_path, &mp, &model, &err)) goto fail;
    cli_autotune(model); /* before the session records the matvecs */
    if (vkllm_session_create(model, &ssp, &cs.session, &err)) goto fail;
    cs.model = model;
    for (int i = 0; i < cs.lora.l.n; i++)
        cs.lora.on[i] = true;
    if (cli_lora_load(&cs.lora.l, model, &err) || lora_apply(&cs, &err)) goto fail;
    cli_lora_describe(&cs.lora.l);
    const vkllm_vocab *vocab = vkllm_model_vocab(model);
    cli_vocab_warnings(vocab);
    cli_warn_context(model, vkllm_session_n_ctx(cs.session));
    if (vkllm_sampler_create(&sp, vkllm_vocab_n_tokens(vocab), &cs.sampler, &err)) goto fail;
    if (vkllm_stream_create(vocab, ignore_eos, &cs.stream, &err)) goto fail;
    for (int i = 0; i < n_stops; i++)
        if (vkllm_stream_add_stop(cs.stream, stops[i], &err)) goto fail;
    uint32_t reserve = cs.n_predict > 0 ? (uint32_t)cs.n_predict : 0;
    struct vkllm_chat_params chp = {.template_text = tmpl,
                                    .template_len = tmpl_len,
                                    .n_reserve = reserve,
                                    .notice = on_notice,
                                    .stop = chat_stop};
    if (vkllm_chat_create(model, cs.session, &chp, &cs.chat, &err)) goto fail;
    if (system && vkllm_chat_add(cs.chat, "system", system, strlen(system), &err)) goto fail;
    /* a system prompt or template that leaves no room would fail every turn */
    if (vkllm_chat_check(cs.chat, &err)) {
        if (err.code == VKLLM_E_CONTEXT_FULL)
            cli_error("%s: %s: no message can be answered; try a larger -c%s",
                      template_path ? template_path : model_path, err.msg,
                      system ? " or a shorter --system" : "");
        else
            cli_error("%s", err.msg);
        goto done;
    }
    fprintf(stderr, "vkllm: %s on %s, context %u tokens; seed %llu\n", cli_shown(model_path),
            vkllm_context_device(ctx)->name, vkllm_session_n_ctx(cs.session),
            (unsigned long long)sp.seed);

    if (pipe(wake) || fcntl(wake[0], F_SETFL, O_NONBLOCK) || fcntl(wake[1], F_SETFL, O_NONBLOCK)) {
        cli_error("cannot make a pipe: %s", strerror(errno));
        goto done;
    }
    signals_catch(old_actions);
    caught = true;

    bool tty = isatty(0);
    status = 0;
    /* from a file or a pipe, a message left out or a command refused makes
     * the exit status 1 (after the rest of the input) */
    const unsigned errors_before = cli_error_count();
    for (;;) {
        if (tty) {
            fputs("> ", stdout);
            if (!cli_flush()) break; /* main reports why */
        }
        long n = read_line(&lines, &line);
        if (n == -3) {
            status = 1;
            break;
        }
        if (n < 0) { /* end of input, or a signal at the prompt */
            if (tty) fputc('\n', stdout);
            /* Ctrl+C: the shell's status for an interrupted program */
            if (n == -2 && !ended) status = 130;
            break;
        }
        while (n > 0 && line[n - 1] == '\r')
            line[--n] = 0;
        if (n == 0) continue;
        if (line[0] == '/') {
            int r = command(&cs, line, (size_t)n, system);
            if (r > 0 || ended) break;
            drain_interrupts(); /* Ctrl+C during the command: it finished, the prompt returns */
            continue;
        }
        if (vkllm_chat_add(cs.chat, "user", line, (size_t)n, &err)) {
            cli_error("%s", err.msg);
            continue;
        }
        drain_interrupts(); /* from here Ctrl+C stops the reply */
        bool ok = reply(&cs);
        drain_interrupts(); /* and from here it ends the program */
        if (!ok) {
            status = 1;
            break;
        }
        if (ended) break;
    }
    if (!tty && status == 0 && cli_error_count() != errors_before) status = 1;
    goto done;
fail:
    cli_error("%s", err.msg);
    status = 1;
done:
    for (int i = 0; i < 2; i++)
        if (wake[i] >= 0) close(wake[i]);
    status = cli_validation_status(ctx, status);
    free(lines.buf);
    free(tmpl);
    free(stops);
    vkllm_chat_free(cs.chat);
    vkllm_stream_free(cs.stream);
    vkllm_sampler_free(cs.sampler);
    vkllm_session_free(cs.session);
    cli_lora_free(&cs.lora.l); /* after the session that used them */
    for (int i = 0; i < cs.lora.l.n; i++)
        free(cs.lora.owned[i]);
    vkllm_model_free(model);
    vkllm_context_destroy(ctx);
    return caught ? signals_restore(old_actions, status) : status;
}
