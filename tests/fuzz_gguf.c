/* fuzz_gguf.c: libFuzzer target for the GGUF reader.
 *
 * Parses the input with vkllm_gguf_parse and, if it is accepted, touches
 * everything the accessors promise is inside the buffer: every key and value,
 * every array element (strings through their offsets table), every typed getter,
 * the first and last byte of each tensor's data, and a copy of every key/value
 * into a writer. With ASan, a read one byte outside the input is a crash.
 *
 *   CC=clang cmake -S . -B build-fuzz -DVKLLM_FUZZ=ON
 *   cmake --build build-fuzz --target fuzz_gguf
 *   build-fuzz/tests/fuzz_gguf -max_total_time=600 -dict=tests/data/fuzz/gguf.dict \
 *       CORPUS tests/data/fuzz/gguf
 *
 * Built with -DFUZZ_STANDALONE, a small main runs the entry point over files
 * and directories instead (the fuzz_gguf_corpus test replays the seeds).
 */
#include "vkllm.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile uint64_t sink; /* keeps the reads from being optimized away */

static void touch_str(struct vkllm_gguf_str s)
{
    if (s.len) sink += (uint8_t)s.ptr[0] + (uint8_t)s.ptr[s.len - 1];
}

static void walk_kv(const vkllm_gguf *g, const struct vkllm_gguf_kv *kv, vkllm_gguf_writer *w)
{
    struct vkllm_error err;
    touch_str(kv->key);
    sink += (uintptr_t)vkllm_gguf_type_name(kv->type)[0];

    char key[256]; /* the getters take C strings; longer keys or keys with NULs are skipped */
    bool named = kv->key.len < sizeof key && !memchr(kv->key.ptr, 0, kv->key.len);
    if (named) {
        memcpy(key, kv->key.ptr, kv->key.len);
        key[kv->key.len] = 0;
        sink += vkllm_gguf_find_kv(g, key) == kv;
        uint64_t u;
        double d;
        bool b;
        struct vkllm_gguf_str s;
        const struct vkllm_gguf_kv *arr;
        if (vkllm_gguf_get_uint(g, key, &u, &err) == VKLLM_OK) sink += u;
        if (vkllm_gguf_get_float(g, key, &d, &err) == VKLLM_OK) sink += (uint64_t)(d == d);
        if (vkllm_gguf_get_bool(g, key, &b, &err) == VKLLM_OK) sink += b;
        if (vkllm_gguf_get_str(g, key, &s, &err) == VKLLM_OK) touch_str(s);
        if (vkllm_gguf_get_arr(g, key, VKLLM_GGUF_TYPE_COUNT, &arr, &err) == VKLLM_OK)
            sink += arr->arr_len;
    }

    if (kv->type == VKLLM_GGUF_ARRAY) {
        for (uint64_t i = 0; i < kv->arr_len; i++) {
            if (kv->arr_type == VKLLM_GGUF_STRING) {
                touch_str(vkllm_gguf_arr_str(kv, i));
            } else if (kv->arr_type != VKLLM_GGUF_ARRAY) {
                sink += (uint64_t)vkllm_gguf_arr_int(kv, i);
                double d = vkllm_gguf_arr_float(kv, i);
                sink += (uint64_t)(d == d);
            }
        }
    } else {
        sink += (uint64_t)vkllm_gguf_kv_int(kv);
        double d = vkllm_gguf_kv_float(kv);
        sink += (uint64_t)(d == d);
    }
    sink += (uint64_t)vkllm_gguf_writer_copy_kv(w, kv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vkllm_gguf *g;
    struct vkllm_error err;
    if (vkllm_gguf_parse(data, size, "fuzz", &g, &err) != VKLLM_OK) {
        sink += strlen(err.msg);
        return 0;
    }
    sink += vkllm_gguf_version(g) + vkllm_gguf_alignment(g) + vkllm_gguf_file_size(g);
    sink += (uintptr_t)vkllm_gguf_name(g)[0];

    vkllm_gguf_writer *w;
    if (vkllm_gguf_writer_create(&w, &err) != VKLLM_OK) abort();
    for (uint64_t i = 0; i < vkllm_gguf_kv_count(g); i++)
        walk_kv(g, vkllm_gguf_kv_at(g, i), w);
    vkllm_gguf_writer_destroy(w);

    for (uint64_t i = 0; i < vkllm_gguf_tensor_count(g); i++) {
        const struct vkllm_gguf_tensor *t = vkllm_gguf_tensor_at(g, i);
        touch_str(t->name);
        if (t->offset > size || t->size > size - t->offset || t->n_dims < 1 || t->n_dims > 4)
            abort();
        uint8_t ends[2] = {0};
        if (t->size && (vkllm_gguf_read(g, t, 0, ends, 1, &err) ||
                        vkllm_gguf_read(g, t, t->size - 1, ends + 1, 1, &err)))
            abort();
        sink += ends[0] + ends[1];
        char name[64];
        if (t->name.len < sizeof name && !memchr(t->name.ptr, 0, t->name.len)) {
            memcpy(name, t->name.ptr, t->name.len);
            name[t->name.len] = 0;
            if (vkllm_gguf_find_tensor(g, name) != t) abort(); /* names are unique */
        }
    }
    vkllm_gguf_close(g);
    return 0;
}

#define FUZZ_NAME "fuzz_gguf"
#include "fuzz_standalone.h"
