/* main.c: vkllm-chat: the arguments, the window, and the frame loop: poll
 * SDL's events, run a step of the --script, draw the panels, present. The
 * loop never waits on the GPU: generation runs on the worker thread. */
#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage[] =
    "usage: vkllm-chat [-m MODEL] [options]\n"
    "\n"
    "A chat window for a GGUF model. Drop a .gguf file on it to open another.\n"
    "Enter sends, Shift+Enter breaks the line, Esc stops a reply (or cancels an edit),\n"
    "Ctrl+R regenerates, Ctrl+N starts a new chat, PgUp/PgDn scroll.\n"
    "\n"
    "  -m, --model FILE     GGUF model (default: the bundled stories260K.gguf)\n"
    "  -c, --ctx-size N     context size in tokens (default: the model's, at most 4096)\n"
    "  -n, --n-predict N    most tokens a reply; -1 until the model stops (default -1)\n"
    "      --temp T         temperature; 0 is greedy (default 0.8)\n"
    "  -s, --seed S         random seed (default: from the clock)\n"
    "      --device D       Vulkan device: index or part of its name\n"
    "      --size WxH       the window's size (default 1000x720)\n"
    "      --script FILE    drive the window from FILE (see app/chat/script.c)\n";

static bool parse_int(const char *flag, const char *v, long long lo, long long hi, long long *out)
{
    char *end;
    long long n = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || n < lo || n > hi) {
        fprintf(stderr, "error: %s needs a number from %lld to %lld\n", flag, lo, hi);
        return false;
    }
    *out = n;
    return true;
}

/* Returns 0 to run, 1 after an error, 2 after --help. */
static int parse_args(int argc, char **argv, struct app_options *o)
{
    long long n, seed = -1;
    o->width = 1000;
    o->height = 720;
    o->worker.n_predict = -1;
    o->worker.sampling = vkllm_sampler_defaults(0);
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
            o->worker.device = v;
        } else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) {
            if (!parse_int(a, v, 0, 1 << 24, &n)) return 1;
            o->worker.n_ctx = (uint32_t)n;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!parse_int(a, v, -1, 1 << 30, &n)) return 1;
            o->worker.n_predict = (int32_t)n;
        } else if (!strcmp(a, "-s") || !strcmp(a, "--seed")) {
            if (!parse_int(a, v, 0, INT64_MAX, &seed)) return 1;
        } else if (!strcmp(a, "--temp")) {
            char *end;
            double t = v ? strtod(v, &end) : -1;
            if (!v || *end || !(t >= 0 && t <= 1e6)) {
                fprintf(stderr, "error: --temp needs a number from 0 to 1e6\n");
                return 1;
            }
            o->worker.sampling.temp = (float)t;
        } else if (!strcmp(a, "--size")) {
            if (!v || sscanf(v, "%dx%d", &o->width, &o->height) != 2 || o->width < 200 ||
                o->height < 150 || o->width > 16384 || o->height > 16384) {
                fprintf(stderr, "error: --size needs WIDTHxHEIGHT, e.g. 1000x720\n");
                return 1;
            }
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
    if (!o->model) o->model = getenv("VKLLM_MODEL");
    if (!o->model) o->model = VKLLM_DEFAULT_MODEL;
    o->worker.sampling.seed =
        seed >= 0 ? (uint64_t)seed : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
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
    const char *env = getenv("VKLLM_UI_SCALE");
    if (env && atof(env) > 0) scale = (float)atof(env);
    if (scale < 1) scale = 1;
    if (scale > 4) scale = 4;
    if (a->fonts && scale != a->scale) {
        a->scale = scale;
        fonts_set_size(a->fonts, app_px(a, 15));
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
        app_load_model(a, e->drop.file);
        SDL_free(e->drop.file);
        break;
    case SDL_KEYDOWN:
        if (!app_key(a, &e->key)) input_box_event(a, e);
        break;
    case SDL_TEXTINPUT:
    case SDL_TEXTEDITING: input_box_event(a, e); break;
    default: break;
    }
}

static void draw(struct app *a)
{
    const struct theme *th = a->th;
    SDL_SetRenderDrawColor(a->ren, th->bg.r, th->bg.g, th->bg.b, 255);
    SDL_RenderClear(a->ren);
    int top = top_bar_height(a), bottom = status_bar_height(a);
    int input = input_box_height(a, a->w), banner = status_bar_banner_height(a);
    int mid = a->h - top - bottom - input - banner;
    if (mid < 0) mid = 0;
    top_bar_frame(a, (SDL_Rect){0, 0, a->w, top});
    view_chat_frame(a, (SDL_Rect){0, top, a->w, mid});
    status_bar_banner(a, (SDL_Rect){0, top + mid, a->w, banner});
    input_box_frame(a, (SDL_Rect){0, top + mid + banner, a->w, input});
    status_bar_frame(a, (SDL_Rect){0, a->h - bottom, a->w, bottom});
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
        if (a->t_loaded && !rss_loaded) memory_kib(&rss_loaded, &peak);
        draw(a);
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
    fprintf(stderr,
            "vkllm-chat: first frame %.0f ms after launch, model loaded %.0f ms after launch; "
            "resident memory %ld KiB with the model (peak %ld KiB); %lu frames while "
            "streaming: %.2f ms mean, %.2f ms max of work a frame\n",
            a->t_first_frame - a->t_launch, a->t_loaded ? a->t_loaded - a->t_launch : -1.0,
            rss_loaded, peak, a->frames_streaming,
            a->frames_streaming ? a->frame_ms_sum / a->frames_streaming : 0.0, a->frame_ms_max);
}

int main(int argc, char **argv)
{
    struct app a = {.editing = -1, .th = &theme_dark, .t_launch = app_now_ms()};
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
    if (fonts_create(a.ren, app_px(&a, 15), &a.fonts, &err) || history_create(&a.hist, &err) ||
        view_chat_create(&a, &a.view, &err) || input_box_create(&a, &a.input, &err) ||
        worker_start(&a.opt.worker, a.hist, &a.lock, &a.worker, &err)) {
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
    if (validation) {
        fprintf(stderr, "error: %u validation messages\n", validation);
        status = 1;
    }
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
