/* main.c: vkllm-chat: the arguments, the window, and the frame loop: poll
 * SDL's events, run a step of the --script, draw the panels, present. The
 * loop never waits on the GPU: generation runs on the worker thread. */
#include "app.h"
#include "number.h"
#include "std_fds.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIN_WIDTH  200
#define MIN_HEIGHT 150
#define MAX_SIDE   16384

static const char usage[] =
    "usage: vkllm-chat [-m MODEL] [options]\n"
    "\n"
    "A chat window for a GGUF model. Ctrl+O opens another (or drop a .gguf file on it),\n"
    "Ctrl+L lists its LoRA adapters (add one there, or drop an adapter's .gguf).\n"
    "Enter sends, Shift+Enter breaks the line, Esc stops a reply (or cancels an edit),\n"
    "Ctrl+R regenerates, Ctrl+N starts a new chat, Ctrl+B shows the saved chats,\n"
    "Ctrl+, the settings, F1 every shortcut. Chats are saved in $XDG_DATA_HOME/vkllm/chats,\n"
    "settings in $XDG_CONFIG_HOME/vkllm/settings.json; -c, -n, --temp and --device\n"
    "override the settings for one run.\n"
    "\n"
    "  -m, --model FILE     GGUF model (default: the bundled stories260K.gguf)\n"
    "  -c, --ctx-size N     context size in tokens (0, the default: the model's, at most 4096)\n"
    "  -n, --n-predict N    most tokens a reply; -1 until the model stops (default -1)\n"
    "      --temp T         temperature from 0 (greedy) to 5 (default 0.8)\n"
    "  -s, --seed S         random seed (default: from the clock)\n"
    "      --device D       Vulkan device: index or part of its name\n"
    "      --size WxH       the window's size, 200x150 to 16384x16384 (default 1000x720)\n"
    "      --script FILE    drive the window from FILE (see app/chat/script.c)\n";

/* V as the engine's strict parser reads it (decimal digits, nothing else);
 * the error names the range. */
static bool parse_int(const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    int64_t n;
    bool range;
    if (!v || number_int(v, &n, &range) || n < lo || n > hi) {
        char shown[200];
        vkllm_printable(shown, sizeof shown, v ? v : "", v ? strlen(v) : 0);
        fprintf(stderr, "error: %s: '%s' is not a whole number from %lld to %lld\n", flag, shown,
                (long long)lo, (long long)hi);
        return false;
    }
    *out = n;
    return true;
}

/* --size WxH: each side through parse_int, so "800x600x3" and " 800x600" are
 * refused as the CLI refuses them. */
static bool parse_size(const char *v, int *w, int *h)
{
    char side[32];
    const char *x = v ? strchr(v, 'x') : NULL;
    int64_t a, b;
    if (!x || (size_t)(x - v) >= sizeof side) {
        fprintf(stderr, "error: --size needs WIDTHxHEIGHT, from %dx%d to %dx%d (e.g. 1000x720)\n",
                MIN_WIDTH, MIN_HEIGHT, MAX_SIDE, MAX_SIDE);
        return false;
    }
    snprintf(side, sizeof side, "%.*s", (int)(x - v), v);
    if (!parse_int("--size width", side, MIN_WIDTH, MAX_SIDE, &a) ||
        !parse_int("--size height", x + 1, MIN_HEIGHT, MAX_SIDE, &b))
        return false;
    *w = (int)a;
    *h = (int)b;
    return true;
}

/* FLAG's VALUE overrides setting KEY for this run, checked as the panel checks it. */
static bool override(struct app_options *o, const char *flag, const char *key, const char *value)
{
    struct settings scratch;
    struct vkllm_error err = {0};
    settings_defaults(&scratch);
    if (value && settings_set(&scratch, key, value, &err)) {
        fprintf(stderr, "error: %s: %s\n", flag, err.msg);
        return false;
    }
    if (o->n_overrides == MAX_OVERRIDES) {
        fprintf(stderr, "error: %s: too many settings on the command line\n", flag);
        return false;
    }
    o->overrides[o->n_overrides][0] = key;
    o->overrides[o->n_overrides++][1] = value;
    return true;
}

/* Returns 0 to run, 1 after an error, 2 after --help. */
static int parse_args(int argc, char **argv, struct app_options *o)
{
    int64_t seed = -1;
    o->width = 1000;
    o->height = 720;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(usage, stdout);
            return 2;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            o->model = v;
        } else if (!strcmp(a, "--script")) {
            o->script = v;
        } else if (!strcmp(a, "--device")) {
            if (!override(o, a, "device", v)) return 1;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!override(o, a, "context", v)) return 1;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!override(o, a, "max_tokens", v)) return 1;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (v && !parse_int(a, v, 0, INT64_MAX, &seed)) return 1;
        } else if (!strcmp(a, "--temp")) {
            if (!override(o, a, "temperature", v)) return 1;
        } else if (!strcmp(a, "--size")) {
            if (v && !parse_size(v, &o->width, &o->height)) return 1;
        } else {
            fprintf(stderr, "error: unknown option '%s' (see vkllm-chat --help)\n", a);
            return 1;
        }
        if (!v) {
            fprintf(stderr, "error: %s needs a value\n", a);
            return 1;
        }
        i++;
    }
    const char *scale = getenv("VKLLM_UI_SCALE");
    bool range;
    if (scale) {
        bool number = !number_float(scale, &o->ui_scale, &range) || range;
        if (!number || o->ui_scale < 1 || o->ui_scale > 4) {
            char shown[200];
            vkllm_printable(shown, sizeof shown, scale, strlen(scale));
            fprintf(stderr, "error: VKLLM_UI_SCALE: '%s' is %s 1 to 4\n", shown,
                    number ? "out of the range" : "not a number from");
            return 1;
        }
    }
    if (!o->model) o->model = getenv("VKLLM_MODEL");
    if (!o->model) o->model = VKLLM_DEFAULT_MODEL;
    o->seed = seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return 0;
}

/* ---- scale */

/* The UI scale: the drawable's pixels per window coordinate where the
 * backend scales (Wayland, macOS), else the display's DPI over 96.
 * VKLLM_UI_SCALE overrides it. */
static void measure_scale(struct app *a)
{
    int ww, wh;
    SDL_GetWindowSize(a->win, &ww, &wh);
    SDL_GetRendererOutputSize(a->ren, &a->w, &a->h);
    a->px_ratio = ww > 0 ? (float)a->w / (float)ww : 1.0f;
    float dpi = 0, scale = 1;
    if (a->px_ratio > 1.01f)
        scale = a->px_ratio;
    else if (!SDL_GetDisplayDPI(SDL_GetWindowDisplayIndex(a->win), &dpi, NULL, NULL) && dpi > 0)
        scale = dpi / 96.0f;
    if (a->opt.ui_scale > 0) scale = (float)a->opt.ui_scale; /* VKLLM_UI_SCALE, checked */
    if (scale < 1) scale = 1;
    if (scale > 4) scale = 4;
    if (a->fonts && scale != a->scale) {
        a->scale = scale;
        fonts_set_size(a->fonts, app_font_px(a));
        view_chat_rescale(a);
        input_box_rescale(a);
    }
    a->scale = scale;
}

/* ---- events and frames */

static void handle(struct app *a, SDL_Event *e)
{
    struct ui *ui = &a->ui;
    switch (e->type) {
    case SDL_QUIT: a->quit = true; break;
    case SDL_WINDOWEVENT:
        if (e->window.event == SDL_WINDOWEVENT_SIZE_CHANGED ||
            e->window.event == SDL_WINDOWEVENT_DISPLAY_CHANGED)
            measure_scale(a);
        break;
    case SDL_MOUSEMOTION:
        ui->mx = (int)(e->motion.x * a->px_ratio);
        ui->my = (int)(e->motion.y * a->px_ratio);
        break;
    case SDL_MOUSEBUTTONDOWN:
    case SDL_MOUSEBUTTONUP:
        if (e->button.button != SDL_BUTTON_LEFT) break;
        ui->mx = (int)(e->button.x * a->px_ratio);
        ui->my = (int)(e->button.y * a->px_ratio);
        ui->down = e->type == SDL_MOUSEBUTTONDOWN;
        if (ui->down) {
            ui->pressed = true;
            ui->clicks = e->button.clicks;
        }
        break;
    case SDL_MOUSEWHEEL: ui->wheel += e->wheel.preciseY; break;
    case SDL_DROPFILE:
        app_open_file(a, e->drop.file);
        SDL_free(e->drop.file);
        break;
    case SDL_KEYDOWN:
        /* the window's keys, then the sidebar's list, then whichever has the
         * keyboard: a text field or the input box */
        if (panel_models_key(a, &e->key) || app_key(a, &e->key) || panel_sidebar_key(a, &e->key))
            break;
        if (a->focus)
            ui_field_event(a, e);
        else if (!a->help_open && !a->settings_open && !a->models_open && !a->lora_open)
            input_box_event(a, e);
        break;
    case SDL_TEXTINPUT:
    case SDL_TEXTEDITING:
        if (a->focus)
            ui_field_event(a, e);
        else if (!a->help_open && !a->settings_open && !a->models_open && !a->lora_open)
            input_box_event(a, e);
        break;
    default: break;
    }
}

static void draw(struct app *a)
{
    const struct theme *th = a->th;
    SDL_SetRenderDrawColor(a->ren, th->bg.r, th->bg.g, th->bg.b, 255);
    SDL_RenderClear(a->ren);
    /* an overlay takes the mouse: the panels under it draw as if it were away */
    bool modal = a->settings_open || a->help_open || a->models_open || a->lora_open;
    struct ui mouse = a->ui;
    if (modal) a->ui = (struct ui){.mx = -1, .my = -1, .taken = true, .wheel_taken = true};
    int side = panel_sidebar_width(a), x = side, w = a->w - side;
    if (side) panel_sidebar_frame(a, (SDL_Rect){0, 0, side, a->h});
    int top = top_bar_height(a), bottom = status_bar_height(a);
    int input = input_box_height(a, w), banner = status_bar_banner_height(a, w);
    int mid = a->h - top - bottom - input - banner;
    if (mid < 0) mid = 0;
    top_bar_frame(a, (SDL_Rect){x, 0, w, top});
    view_chat_frame(a, (SDL_Rect){x, top, w, mid});
    status_bar_banner(a, (SDL_Rect){x, top + mid, w, banner});
    input_box_frame(a, (SDL_Rect){x, top + mid + banner, w, input});
    status_bar_frame(a, (SDL_Rect){x, a->h - bottom, w, bottom});
    if (!modal) return;
    a->ui = mouse;
    SDL_Color veil = a->th->bg;
    veil.a = 160;
    SDL_SetRenderDrawBlendMode(a->ren, SDL_BLENDMODE_BLEND);
    draw_rect(a, (SDL_Rect){0, 0, a->w, a->h}, veil);
    SDL_SetRenderDrawBlendMode(a->ren, SDL_BLENDMODE_NONE);
    if (a->models_open) panel_models_frame(a, (SDL_Rect){0, 0, a->w, a->h});
    if (a->lora_open) panel_lora_frame(a, (SDL_Rect){0, 0, a->w, a->h});
    if (a->settings_open) panel_settings_frame(a, (SDL_Rect){0, 0, a->w, a->h});
    if (a->help_open) overlay_help_frame(a, (SDL_Rect){0, 0, a->w, a->h});
}

/* Resident memory now and at most, from /proc (0 where unknown). */
static void memory_kib(long *rss, long *peak)
{
    *rss = *peak = 0;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "VmRSS: %ld", rss);
        sscanf(line, "VmHWM: %ld", peak);
    }
    fclose(f);
}

static void run(struct app *a, bool vsync, double frame_ms)
{
    double last_event = app_now_ms();
    long rss_loaded = 0, peak;
    while (!a->quit) {
        a->ui.pressed = a->ui.taken = a->ui.wheel_taken = false;
        a->ui.wheel = 0;
        pthread_mutex_lock(&a->lock);
        bool busy = worker_busy(a->worker);
        bool streaming = worker_status(a->worker)->phase == WORKER_GENERATING;
        pthread_mutex_unlock(&a->lock);
        /* nothing moves: sleep until something happens (at most a quarter
         * second, for the banner's timeout) */
        bool idle = !busy && !script_waiting(a) && !a->ui.down && app_now_ms() - last_event > 500;
        SDL_Event e;
        if (idle && SDL_WaitEventTimeout(&e, 250)) handle(a, &e);
        while (SDL_PollEvent(&e)) {
            handle(a, &e);
            last_event = app_now_ms();
        }
        double t0 = app_now_ms();
        script_step(a);
        app_poll_worker(a);
        panel_models_poll(a);
        panel_lora_poll(a);
        if (a->t_loaded && !rss_loaded) memory_kib(&rss_loaded, &peak);
        draw(a);
        if (!a->ui.down) a->ui.dragging = NULL; /* let go over a slider no longer drawn */
        if (a->screenshot) {
            struct vkllm_error err = {0};
            if (screenshot_save(a->ren, a->screenshot, &err)) {
                fprintf(stderr, "vkllm-chat: error: %s\n", err.msg);
                a->status = 1;
                a->quit = true;
            }
            free(a->screenshot);
            a->screenshot = NULL;
        }
        double work = app_now_ms() - t0;
        if (streaming) {
            a->frames_streaming++;
            a->frame_ms_sum += work;
            if (work > a->frame_ms_max) a->frame_ms_max = work;
        }
        SDL_RenderPresent(a->ren);
        fonts_end_frame(a->fonts);
        if (!a->t_first_frame) a->t_first_frame = app_now_ms();
        double spent = app_now_ms() - t0;
        if (!vsync && spent < frame_ms) SDL_Delay((Uint32)(frame_ms - spent));
    }
    long rss_end;
    memory_kib(&rss_end, &peak);
    char loaded[128] = "model not loaded";
    if (a->t_loaded)
        snprintf(loaded, sizeof loaded,
                 "model loaded %.0f ms after launch; resident memory %ld KiB with the model",
                 a->t_loaded - a->t_launch, rss_loaded);
    fprintf(stderr,
            "vkllm-chat: first frame %.0f ms after launch, %s (peak %ld KiB); %lu frames while "
            "streaming: %.2f ms mean, %.2f ms max of work a frame\n",
            a->t_first_frame - a->t_launch, loaded, peak, a->frames_streaming,
            a->frames_streaming ? a->frame_ms_sum / a->frames_streaming : 0.0, a->frame_ms_max);
}

int main(int argc, char **argv)
{
    struct app a = {.editing = -1, .th = &theme_dark, .t_launch = app_now_ms()};
    struct worker_params wp;
    std_fds_keep(); /* before the display's socket could take descriptor 2 */
    /* a save past `ulimit -f` fails with EFBIG (shown in the window), and a
     * closed stderr fails a log line with EPIPE: neither may kill the window */
    signal(SIGXFSZ, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    int rc = parse_args(argc, argv, &a.opt);
    if (rc) return rc == 2 ? 0 : 1;
    struct vkllm_error err = {0};
    if (a.opt.script && script_open(a.opt.script, &a.script, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    SDL_SetHint(SDL_HINT_VIDEO_X11_NET_WM_BYPASS_COMPOSITOR, "0");
    if (SDL_Init(SDL_INIT_VIDEO)) {
        fprintf(stderr, "error: cannot open a window: %s\n", SDL_GetError());
        script_free(a.script);
        return 1;
    }
    pthread_mutex_init(&a.lock, NULL);
    int status = 1;
    a.win = SDL_CreateWindow("vkllm chat", SDL_WINDOWPOS_UNDEFINED, SDL_WINDOWPOS_UNDEFINED,
                             a.opt.width, a.opt.height,
                             SDL_WINDOW_RESIZABLE | SDL_WINDOW_ALLOW_HIGHDPI);
    if (a.win) a.ren = SDL_CreateRenderer(a.win, -1, SDL_RENDERER_PRESENTVSYNC);
    if (!a.ren) {
        fprintf(stderr, "error: cannot open a window: %s\n", SDL_GetError());
        goto done;
    }
    SDL_SetWindowMinimumSize(a.win, 480, 360);
    measure_scale(&a);
    /* a settings or data directory that cannot be had is shown, not fatal */
    app_settings_init(&a);
    status_bar_init(&a);
    if (history_data_dir(&a.data_dir, &err)) app_banner(&a, true, "%s", err.msg);
    wp = app_worker_params(&a);
    if (fonts_create(a.ren, app_font_px(&a), &a.fonts, &err) || history_create(&a.hist, &err) ||
        view_chat_create(&a, &a.view, &err) || input_box_create(&a, &a.input, &err) ||
        panel_sidebar_create(&a, &a.sidebar, &err) ||
        panel_settings_create(&a, &a.settings_panel, &err) || app_saver_start(&a, &err) ||
        panel_models_create(&a, &a.models_panel, &err) ||
        panel_lora_create(&a, &a.lora_panel, &err) ||
        worker_start(&wp, a.hist, &a.lock, &a.worker, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        goto done;
    }
    worker_load(a.worker, a.opt.model);
    SDL_StartTextInput();

    SDL_RendererInfo info;
    bool vsync = !SDL_GetRendererInfo(a.ren, &info) && (info.flags & SDL_RENDERER_PRESENTVSYNC);
    SDL_DisplayMode mode;
    int hz =
        !SDL_GetCurrentDisplayMode(SDL_GetWindowDisplayIndex(a.win), &mode) && mode.refresh_rate > 0
            ? mode.refresh_rate
            : 60;
    run(&a, vsync, 1000.0 / hz);
    status = a.status;
done:;
    uint32_t validation = worker_free(a.worker);
    app_saver_stop(&a); /* the last writes finish */
    if (validation) {
        fprintf(stderr, "error: %u validation messages\n", validation);
        status = 1;
    }
    panel_models_destroy(a.models_panel); /* kills a file dialog still open */
    panel_lora_destroy(a.lora_panel);
    panel_settings_destroy(a.settings_panel);
    panel_sidebar_destroy(a.sidebar);
    free(a.settings_path);
    free(a.data_dir);
    input_box_destroy(a.input);
    view_chat_destroy(a.view);
    history_free(a.hist);
    fonts_destroy(a.fonts);
    script_free(a.script);
    free(a.screenshot);
    if (a.ren) SDL_DestroyRenderer(a.ren);
    if (a.win) SDL_DestroyWindow(a.win);
    pthread_mutex_destroy(&a.lock);
    SDL_Quit();
    return status;
}
